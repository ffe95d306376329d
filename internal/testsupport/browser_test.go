package testsupport

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Navigate sends a navigation's Fetch Metadata on every hop and follows
// redirects and a page that refreshes itself; cookies go through the jar.
func TestBrowserNavigate(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "c", Value: "v", Path: "/"})
		http.Redirect(w, r, "/refresh", http.StatusSeeOther)
	})
	mux.HandleFunc("/refresh", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<meta http-equiv="refresh" content="0;url=/end?a=1&amp;b=2">`)
	})
	mux.HandleFunc("/end", func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("c")
		fmt.Fprintf(w, "%s %s %v", r.Header.Get("Sec-Fetch-Mode"), r.URL.RawQuery, c)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	br := NewBrowser(t)
	if got := br.Navigate(srv.URL + "/start"); got.StatusCode != 200 || got.Body != "navigate a=1&b=2 c=v" || len(got.Visited) != 3 {
		t.Errorf("Navigate ended with %d %q after %q", got.StatusCode, got.Body, got.Visited)
	}
	if c, ok := br.Cookie(srv.URL, "c"); !ok || c.Value != "v" {
		t.Errorf("Cookie(c) = %v, %v", c, ok)
	}
	if r := br.Get(srv.URL + "/start"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("Get followed a redirect: %d", r.StatusCode)
	}
}

// Stream sends the EventSource headers and the caller's, reads named
// events, comments (NextAny) and retry fields, and reports the end of the
// stream.
func TestBrowserStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, ": %s %s\n\nevent: session\ndata: {\"a\":1}\n\n: hb\n\nretry: 1000\n\n", r.Header.Get("Sec-Fetch-Mode"), r.Header.Get("X-A"))
	}))
	defer srv.Close()
	s := NewBrowser(t).Stream(srv.URL, "X-A", "b")
	if ev := s.NextAny(); ev != (Event{Name: ":", Data: "cors b"}) {
		t.Errorf("first event %+v", ev)
	}
	if ev := s.Next(); ev != (Event{Name: "session", Data: `{"a":1}`}) {
		t.Errorf("second event %+v", ev)
	}
	if ev := s.Next(); ev != (Event{Name: "retry", Data: "1000"}) {
		t.Errorf("after a comment %+v", ev)
	}
	if ev := s.Next(); ev.Name != "EOF" {
		t.Errorf("after the end: %+v", ev)
	}
}
