package e2e

import (
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// netlog records what a tab sends, in order, through the DevTools network
// events: each request (every hop of a redirect chain is one) with the raw
// headers the network stack put on the wire, cookies included, and the
// content type of each answer.
type netlog struct {
	mu    sync.Mutex
	reqs  []*sentRequest
	byID  map[network.RequestID][]*sentRequest // hops of one request ID, in order
	extra map[network.RequestID][]network.Headers
	types map[network.RequestID][]string
}

// sentRequest is one request (one hop) the tab sent.
type sentRequest struct {
	URL, Method string
	Type        network.ResourceType
	Headers     network.Headers // raw, with Cookie; nil until Chromium reports them
	ContentType string          // of the answer, once received
}

// Cookie returns the Cookie header the request was sent with.
func (r *sentRequest) Cookie() string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, "cookie") {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// recordNetwork starts recording the tab's requests.
func (tb *tab) recordNetwork() *netlog {
	tb.T().Helper()
	nl := &netlog{byID: map[network.RequestID][]*sentRequest{}, extra: map[network.RequestID][]network.Headers{},
		types: map[network.RequestID][]string{}}
	if err := chromedp.Listen(tb.Ctx, nl.event); err != nil {
		tb.T().Fatalf("%s: listening to network events: %v", tb.Name, err)
	}
	return nl
}

// event runs on the tab's reading goroutine: it only files the event.
// Chromium numbers the hops of a redirect chain with one request ID and
// reports their raw headers (ExtraInfo) in the same order, so the n-th
// ExtraInfo of an ID belongs to its n-th hop.
func (nl *netlog) event(ev any) {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		r := &sentRequest{URL: e.Request.URL + e.Request.URLFragment, Method: e.Request.Method, Type: e.Type}
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

// requests returns a copy of the requests recorded so far.
func (nl *netlog) requests() []sentRequest {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	out := make([]sentRequest, len(nl.reqs))
	for i, r := range nl.reqs {
		out[i] = *r
	}
	return out
}

// since returns the requests recorded after the first n.
func (nl *netlog) since(n int) []sentRequest { return nl.requests()[n:] }

// len returns how many requests were recorded.
func (nl *netlog) len() int {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	return len(nl.reqs)
}

// documentRequests returns the top-level document requests (navigations).
func documentRequests(reqs []sentRequest) []sentRequest {
	var out []sentRequest
	for _, r := range reqs {
		if r.Type == network.ResourceTypeDocument {
			out = append(out, r)
		}
	}
	return out
}

// logRequests writes the requests to the test log.
func logRequests(t *testing.T, what string, reqs []sentRequest) {
	t.Helper()
	var b strings.Builder
	for _, r := range reqs {
		b.WriteString("\n  " + r.Method + " " + r.URL + " [" + string(r.Type) + "] -> " + r.ContentType)
		if c := r.Cookie(); c != "" {
			b.WriteString(" (cookies: " + cookieNamesIn(c) + ")")
		}
	}
	t.Logf("%s:%s", what, b.String())
}

// cookieNamesIn lists the names of a Cookie header's cookies (never their
// values).
func cookieNamesIn(header string) string {
	var names []string
	for part := range strings.SplitSeq(header, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}
