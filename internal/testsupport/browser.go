package testsupport

import (
	"bufio"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Browser is an HTTP client with a cookie jar that does not follow
// redirects by itself, so that tests see every hop: a browser as far as
// cookies, redirects and Fetch Metadata go, without a page's script (e2e
// drives Chromium for that).
type Browser struct {
	Jar    *cookiejar.Jar
	Client *http.Client

	t testing.TB
}

// NewBrowser returns a Browser with an empty cookie jar. Its requests fail
// the test t on a transport error or after 20 s.
func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Jar: jar, Client: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// T returns the test the browser fails.
func (b *Browser) T() testing.TB { return b.t }

// Response is a response with its body read.
type Response struct {
	*http.Response
	Body string

	// Visited lists the URLs Navigate went through, in order.
	Visited []string
}

// Do sends a request; headers are name, value pairs. It fails the test on a
// transport error.
func (b *Browser) Do(method, u, body string, headers ...string) *Response {
	b.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return &Response{Response: resp, Body: string(data)}
}

// Get is Do("GET", u, "").
func (b *Browser) Get(u string) *Response {
	b.t.Helper()
	return b.Do("GET", u, "")
}

// Follow follows the redirects of resp (303 turns a POST into a GET) and
// returns the first response that is not a redirect.
func (b *Browser) Follow(resp *Response) *Response {
	b.t.Helper()
	for range 10 {
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return resp
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.t.Fatalf("bad Location %q: %v", resp.Header.Get("Location"), err)
		}
		resp = b.Get(loc.String())
	}
	b.t.Fatal("too many redirects")
	return nil
}

// Navigation is what a browser sends with a navigation (Fetch Metadata),
// as Do's headers.
var Navigation = []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html,*/*;q=0.8"}

// MetaRefresh finds the target of a page that navigates by itself (bff's
// page at the end of a sign-in), before HTML unescaping.
var MetaRefresh = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]*)">`)

// Navigate GETs u as a browser navigation (with Fetch Metadata) and
// follows redirects and pages that refresh to another URL, as a browser
// does; it returns the final page.
func (b *Browser) Navigate(u string) *Response {
	b.t.Helper()
	var visited []string
	for range 20 {
		visited = append(visited, u)
		resp := b.Do("GET", u, "", Navigation...)
		resp.Visited = visited
		next := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			m := MetaRefresh.FindStringSubmatch(resp.Body)
			if m == nil {
				return resp
			}
			next = html.UnescapeString(m[1])
		}
		loc, err := resp.Request.URL.Parse(next)
		if err != nil {
			b.t.Fatalf("bad redirect %q: %v", next, err)
		}
		u = loc.String()
	}
	b.t.Fatalf("too many redirects: %q", visited)
	return nil
}

// Cookie returns the jar's cookie called name for u.
func (b *Browser) Cookie(u, name string) (*http.Cookie, bool) {
	pu, err := url.Parse(u)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.Jar.Cookies(pu) {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// EventSource is what a same-origin EventSource sends, as Do's headers.
var EventSource = []string{"Accept", "text/event-stream", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "same-origin"}

// Event is one Server-Sent Event; Name is "EOF" at the end of the stream,
// ":" for a comment (its text in Data) and "retry" for a retry field.
type Event struct{ Name, Data string }

// EventStream reads a Server-Sent Events response.
type EventStream struct {
	// Response is the stream's response; the stream reads its body.
	Response *http.Response

	t      testing.TB
	events chan Event
	close  func()
}

// Stream opens u (an event stream) with the browser's cookies and the
// EventSource headers, then headers (name, value pairs). It fails the test
// unless u answers 200 with text/event-stream. The stream is closed at the
// end of the test.
func (b *Browser) Stream(u string, headers ...string) *EventStream {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	for i, hs := 0, append(slices.Clone(EventSource), headers...); i+1 < len(hs); i += 2 {
		req.Header.Set(hs[i], hs[i+1])
	}
	// Not b.Client: its timeout would cut a stream that lasts.
	resp, err := (&http.Client{Jar: b.Jar}).Do(req)
	if err != nil {
		cancel()
		b.t.Fatalf("GET %s: %v", u, err)
	}
	s := &EventStream{Response: resp, t: b.t, events: make(chan Event, 64), close: func() { cancel(); resp.Body.Close() }}
	b.t.Cleanup(s.Close)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b.t.Fatalf("GET %s: %d %q", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	go s.read(resp.Body)
	return s
}

func (s *EventStream) read(body io.Reader) {
	defer close(s.events)
	sc := bufio.NewScanner(body)
	var ev Event
	for sc.Scan() {
		line := sc.Text()
		switch k, v, _ := strings.Cut(line, ": "); {
		case line == "":
			if ev != (Event{}) {
				s.events <- ev
			}
			ev = Event{}
		case strings.HasPrefix(line, ":"):
			ev = Event{Name: ":", Data: strings.TrimPrefix(line, ": ")}
		case k == "event":
			ev.Name = v
		case k == "data":
			ev.Data = v
		case k == "retry":
			ev = Event{Name: "retry", Data: v}
		}
	}
}

// Close closes the stream, as a browser leaving the page does.
func (s *EventStream) Close() { s.close() }

// Next returns the next event that is not a comment, or Event{Name: "EOF"}
// at the end of the stream. It fails the test after 10 s without one.
func (s *EventStream) Next() Event {
	s.t.Helper()
	for {
		if ev := s.NextAny(); ev.Name != ":" {
			return ev
		}
	}
}

// NextAny is Next with comments (heartbeats).
func (s *EventStream) NextAny() Event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			return Event{Name: "EOF"}
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10 s")
		return Event{}
	}
}
