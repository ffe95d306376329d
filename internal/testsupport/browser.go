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

// metaRefresh finds the target of a page that navigates by itself (bff's
// page at the end of a sign-in).
var metaRefresh = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]*)">`)

// Navigate GETs u as a browser navigation (with Fetch Metadata) and
// follows redirects and pages that refresh to another URL, as a browser
// does; it returns the final page.
func (b *Browser) Navigate(u string) *Response {
	b.t.Helper()
	for range 20 {
		resp := b.Do("GET", u, "", Navigation...)
		next := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			m := metaRefresh.FindStringSubmatch(resp.Body)
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
	b.t.Fatal("too many redirects")
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

// Event is one Server-Sent Event; Name is "EOF" at the end of the stream.
type Event struct{ Name, Data string }

// EventStream reads a Server-Sent Events response.
type EventStream struct {
	t      testing.TB
	events chan Event
}

// Stream opens u (an event stream) with the browser's cookies and the
// headers of a same-origin EventSource. The stream is closed at the end of
// the test.
func (b *Browser) Stream(u string) *EventStream {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := (&http.Client{Jar: b.Jar}).Do(req)
	if err != nil {
		cancel()
		b.t.Fatalf("GET %s: %v", u, err)
	}
	b.t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b.t.Fatalf("GET %s: %d %q", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &EventStream{t: b.t, events: make(chan Event, 16)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev Event
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			switch {
			case sc.Text() == "" && ev.Name != "":
				s.events <- ev
				ev = Event{}
			case k == "event":
				ev.Name = v
			case k == "data":
				ev.Data = v
			}
		}
	}()
	return s
}

// Next returns the next event (comments skipped), or Event{Name: "EOF"}
// at the end of the stream. It fails the test after 10 s without one.
func (s *EventStream) Next() Event {
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
