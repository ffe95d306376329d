package chromium

import (
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Documents records the URL of every document the tab's main frame shows
// (a redirect shows none).
type Documents struct {
	mu   sync.Mutex
	urls []string
}

// RecordDocuments starts recording the documents the tab shows.
func (tb *Tab) RecordDocuments() *Documents {
	tb.t.Helper()
	d := &Documents{}
	err := chromedp.Listen(tb.Ctx, func(ev any) {
		if e, ok := ev.(*page.EventFrameNavigated); ok && e.Frame.ParentID == "" {
			d.mu.Lock()
			d.urls = append(d.urls, e.Frame.URL)
			d.mu.Unlock()
		}
	})
	if err != nil {
		tb.t.Fatalf("%s: listening to page events: %v", tb.Name, err)
	}
	return d
}

// Shown returns the documents shown so far, and forgets them.
func (d *Documents) Shown() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.urls
	d.urls = nil
	return out
}

// NetLog records what a tab sends, in order, through the DevTools network
// events: each request (every hop of a redirect chain is one) with the raw
// headers the network stack put on the wire, cookies included, and the
// content type of each answer.
type NetLog struct {
	mu    sync.Mutex
	reqs  []*SentRequest
	byID  map[network.RequestID][]*SentRequest // hops of one request ID, in order
	extra map[network.RequestID][]network.Headers
	types map[network.RequestID][]string
}

// SentRequest is one request (one hop) the tab sent.
type SentRequest struct {
	URL, Method string
	Type        network.ResourceType
	Headers     network.Headers // raw, with Cookie; nil until Chromium reports them
	ContentType string          // of the answer, once received
}

// Cookie returns the Cookie header the request was sent with.
func (r *SentRequest) Cookie() string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, "cookie") {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// CookieNames lists the names of the cookies the request carried (never
// their values), comma-separated.
func (r *SentRequest) CookieNames() string {
	var names []string
	for part := range strings.SplitSeq(r.Cookie(), ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

// RecordNetwork starts recording the tab's requests.
func (tb *Tab) RecordNetwork() *NetLog {
	tb.t.Helper()
	nl := &NetLog{byID: map[network.RequestID][]*SentRequest{}, extra: map[network.RequestID][]network.Headers{},
		types: map[network.RequestID][]string{}}
	if err := chromedp.Listen(tb.Ctx, nl.event); err != nil {
		tb.t.Fatalf("%s: listening to network events: %v", tb.Name, err)
	}
	return nl
}

// event runs on the tab's reading goroutine: it only files the event.
// Chromium numbers the hops of a redirect chain with one request ID and
// reports their raw headers (ExtraInfo) in the same order, so the n-th
// ExtraInfo of an ID belongs to its n-th hop.
func (nl *NetLog) event(ev any) {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		r := &SentRequest{URL: e.Request.URL + e.Request.URLFragment, Method: e.Request.Method, Type: e.Type}
		hops := append(nl.byID[e.RequestID], r)
		nl.byID[e.RequestID] = hops
		if ex := nl.extra[e.RequestID]; len(ex) >= len(hops) {
			r.Headers = ex[len(hops)-1]
		}
		nl.reqs = append(nl.reqs, r)
		if e.RedirectResponse != nil && len(hops) >= 2 {
			hops[len(hops)-2].ContentType = e.RedirectResponse.MimeType
		}
	case *network.EventRequestWillBeSentExtraInfo:
		ex := append(nl.extra[e.RequestID], e.Headers)
		nl.extra[e.RequestID] = ex
		if hops := nl.byID[e.RequestID]; len(hops) >= len(ex) {
			hops[len(ex)-1].Headers = e.Headers
		}
	case *network.EventResponseReceived:
		if hops := nl.byID[e.RequestID]; len(hops) > 0 {
			hops[len(hops)-1].ContentType = e.Response.MimeType
		}
	}
}

// Requests returns a copy of the requests recorded so far.
func (nl *NetLog) Requests() []SentRequest {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	out := make([]SentRequest, len(nl.reqs))
	for i, r := range nl.reqs {
		out[i] = *r
	}
	return out
}

// Since returns the requests recorded after the first n.
func (nl *NetLog) Since(n int) []SentRequest { return nl.Requests()[n:] }

// Len returns how many requests were recorded.
func (nl *NetLog) Len() int {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	return len(nl.reqs)
}

// DocumentRequests returns the top-level document requests (navigations).
func DocumentRequests(reqs []SentRequest) []SentRequest {
	var out []SentRequest
	for _, r := range reqs {
		if r.Type == network.ResourceTypeDocument {
			out = append(out, r)
		}
	}
	return out
}

// LogRequests writes the requests to the test log, with the names (never
// the values) of the cookies each carried.
func LogRequests(t testing.TB, what string, reqs []SentRequest) {
	t.Helper()
	var b strings.Builder
	for _, r := range reqs {
		b.WriteString("\n  " + r.Method + " " + r.URL + " [" + string(r.Type) + "] -> " + r.ContentType)
		if r.Cookie() != "" {
			b.WriteString(" (cookies: " + r.CookieNames() + ")")
		}
	}
	t.Logf("%s:%s", what, b.String())
}
