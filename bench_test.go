package bff

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/storage"
)

// Benchmarks of the request paths, in process (no network except to the
// test provider). The hot path is RequireSession with a fresh token:
// compare its "guarded" sub-benchmark with "bare" (the handler alone) to see
// what the guard adds. scripts/bench.sh runs them and the load test.

// benchBody is the trivial handler's response.
var benchBody = []byte(`{"sub":"alice-0001","email":"alice@example.com"}` + "\n")

// benchHandler is the handler behind the guard: a small JSON response.
var benchHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(benchBody)
})

// benchApp signs a browser in and returns the app and the session ID. Its
// BFF logs nowhere, even with -v, so that the figures do not depend on it.
func benchApp(tb testing.TB, opCfg oidctest.Config, opt func(*Options)) (*app, string) {
	tb.Helper()
	op := testOP(tb, opCfg)
	a := newApp(tb, op, func(o *Options) {
		o.Logger = quietLogger
		if opt != nil {
			opt(o)
		}
	})
	br := newBrowser(tb)
	a.login(br)
	id, ok := a.sessionCookie(br)
	if !ok {
		tb.Fatal("no session cookie after sign-in")
	}
	return a, id
}

// cookieRequest is a GET /api/me carrying the session cookie (and another
// cookie, as browsers usually send several).
func cookieRequest(a *app, value string) *http.Request {
	r := httptest.NewRequest("GET", a.URL+"/api/me", nil)
	if value != "" {
		r.Header.Set("Cookie", "theme=dark; "+a.bff.cfg.CookieName+"="+value)
	}
	return r
}

// serve runs h on r with a new recorder and checks the status.
func serve(tb testing.TB, h http.Handler, r *http.Request, want int) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != want {
		tb.Fatalf("status %d, want %d: %s", w.Code, want, w.Body)
	}
}

func BenchmarkHotPathMemory(b *testing.B) {
	a, id := benchApp(b, oidctest.Config{}, nil)
	r := cookieRequest(a, id)
	guarded := a.bff.RequireSession(benchHandler)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", benchHandler}, {"guarded", guarded}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serve(b, bc.h, r, 200)
			}
		})
	}
}

func benchReject(b *testing.B, cookie func(a *app) string) {
	a, _ := benchApp(b, oidctest.Config{}, nil)
	r := cookieRequest(a, cookie(a))
	h := a.bff.RequireSession(benchHandler)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, r, 401)
	}
}

func BenchmarkRejectNoCookie(b *testing.B) {
	benchReject(b, func(*app) string { return "" })
}

func BenchmarkRejectBadCookie(b *testing.B) {
	benchReject(b, func(*app) string { return "not-a-session-id" })
}

func BenchmarkRejectUnknownID(b *testing.B) {
	benchReject(b, func(*app) string { return rand.Text() })
}

var quietLogger = slog.New(slog.DiscardHandler)

func BenchmarkLoginRedirect(b *testing.B) {
	op := testOP(b, oidctest.Config{})
	a := newApp(b, op, func(o *Options) { o.Logger = quietLogger })
	r := httptest.NewRequest("GET", a.URL+"/auth/login?returnTo=/app", nil)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, a.bff, r, http.StatusSeeOther)
	}
}

// BenchmarkCallback measures the whole callback: transaction cookie, code
// exchange, ID token verification, userinfo, index and session writes. Each
// iteration needs a fresh sign-in transaction, prepared off the clock.
func BenchmarkCallback(b *testing.B) {
	op := testOP(b, oidctest.Config{})
	a := newApp(b, op, func(o *Options) { o.Logger = quietLogger })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		br := newBrowser(b)
		cb := a.startLogin(br)
		r := httptest.NewRequest("GET", cb, nil)
		for _, c := range br.jar.Cookies(r.URL) {
			r.AddCookie(c)
		}
		b.StartTimer()
		serve(b, a.bff, r, http.StatusSeeOther)
	}
}

// BenchmarkRefresh forces the refresh path on every request: the shared
// clock jumps past the access token's expiry, so RequireSession runs the
// refresh-token grant, verifies the new ID token, writes the record and
// records activity.
func BenchmarkRefresh(b *testing.B) {
	clk := &offsetClock{}
	const ttl = 2 * time.Minute
	a, id := benchApp(b, oidctest.Config{Now: clk.Now, AccessTokenTTL: ttl}, func(o *Options) {
		o.Now = clk.Now
		o.MaxLifetime = 10 * 365 * 24 * time.Hour
	})
	r := cookieRequest(a, id)
	h := a.bff.RequireSession(benchHandler)
	before := a.op.RefreshGrants()
	b.ReportAllocs()
	for b.Loop() {
		clk.Advance(ttl)
		serve(b, h, r, 200)
	}
	if got := a.op.RefreshGrants() - before; got != b.N {
		b.Fatalf("%d refresh grants for %d requests", got, b.N)
	}
}

// TestHotPathAllocs: a request with a fresh session allocates at most 10
// objects beyond what the handler (and the recorder) allocate.
func TestHotPathAllocs(t *testing.T) {
	a, id := benchApp(t, oidctest.Config{}, nil)
	r := cookieRequest(a, id)
	guarded := a.bff.RequireSession(benchHandler)
	serve(t, guarded, r, 200) // warm the cache
	bare := testing.AllocsPerRun(200, func() { serve(t, benchHandler, r, 200) })
	full := testing.AllocsPerRun(200, func() { serve(t, guarded, r, 200) })
	t.Logf("bare %.0f allocs, guarded %.0f allocs", bare, full)
	if full-bare > 10 {
		t.Errorf("RequireSession allocates %.0f objects per request, want at most 10", full-bare)
	}
	// A rejection without a usable cookie is cheaper than an authenticated
	// request (same request bytes, same recorder); an unknown session costs
	// its one store lookup more.
	auth := testing.AllocsPerRun(200, func() { serve(t, guarded, cookieRequest(a, id), 200) })
	for _, tc := range []struct {
		name, cookie string
		extra        float64
	}{
		{"no cookie", "", 0}, {"malformed cookie", "x", 0}, {"unknown session", rand.Text(), 3},
	} {
		rej := testing.AllocsPerRun(200, func() { serve(t, guarded, cookieRequest(a, tc.cookie), 401) })
		t.Logf("%s: %.0f allocs (authenticated: %.0f)", tc.name, rej, auth)
		if rej > auth+tc.extra {
			t.Errorf("%s: the 401 allocates %.0f objects, an authenticated request %.0f", tc.name, rej, auth)
		}
	}
}

// countingBackend counts session-record lookups.
type countingBackend struct {
	storage.Backend
	finds atomic.Int64
}

func (s *countingBackend) Get(ctx context.Context, key string) ([]byte, bool, error) {
	s.finds.Add(1)
	return s.Backend.Get(ctx, key)
}

// TestRejectStoreLookups: a flood of bad cookies costs no store lookup for
// a malformed ID and exactly one for an unknown well-formed ID.
func TestRejectStoreLookups(t *testing.T) {
	a, id := benchApp(t, oidctest.Config{}, nil)
	cs := &countingBackend{Backend: a.bff.store.be}
	a.bff.store.be = cs
	h := a.bff.RequireSession(benchHandler)
	serve(t, h, cookieRequest(a, id), 200) // the first request reads the session into the cache
	for _, tc := range []struct {
		name    string
		cookie  string
		status  int
		lookups int64
	}{
		{"no cookie", "", 401, 0},
		{"malformed: too short", "ABC", 401, 0},
		{"malformed: lower case", strings.ToLower(rand.Text()), 401, 0},
		{"malformed: base32 padding", strings.Repeat("A", sessionIDLen-1) + "=", 401, 0},
		{"malformed: too long", rand.Text() + "A", 401, 0},
		{"malformed: digits outside base32", strings.Repeat("1", sessionIDLen), 401, 0},
		{"unknown well-formed ID", rand.Text(), 401, 1},
		{"valid session, cached", id, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20
			before := cs.finds.Load()
			for range n {
				serve(t, h, cookieRequest(a, tc.cookie), tc.status)
			}
			if got := cs.finds.Load() - before; got != n*tc.lookups {
				t.Errorf("%d store lookups for %d requests, want %d", got, n, n*tc.lookups)
			}
		})
	}
}

// TestSessionCookieSmallWithHugeTokens: the cookie holds only the session
// ID, whatever the size of the provider's tokens and claims.
func TestSessionCookieSmallWithHugeTokens(t *testing.T) {
	groups := make([]string, 400)
	for i := range groups {
		groups[i] = fmt.Sprintf("group-%04d-with-a-long-descriptive-name", i)
	}
	user := oidctest.DefaultUser
	user.Extra = map[string]any{"groups": groups, "picture": "https://img.example/" + strings.Repeat("p", 4000)}
	op := testOP(t, oidctest.Config{Users: []oidctest.User{user}})
	a := newApp(t, op, nil)
	br := newBrowser(t)
	cb := a.startLogin(br)
	resp := br.get(cb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback status %d", resp.StatusCode)
	}
	var set string
	for _, line := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(line, a.bff.cfg.CookieName+"=") {
			set = line
		}
	}
	if set == "" {
		t.Fatal("no session cookie set")
	}
	if len(set) >= 100 {
		t.Errorf("Set-Cookie is %d bytes, want < 100: %s", len(set), set)
	}
	id, _ := a.sessionCookie(br)
	s, err := a.storeSession(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.rec.IDToken) < 20000 {
		t.Fatalf("ID token is only %d bytes; the test needs a huge one", len(s.rec.IDToken))
	}
	if code, _ := a.status(br, "GET", "/api/me"); code != 200 {
		t.Fatalf("/api/me = %d", code)
	}
}

// TestPrebuiltRejections: the bodies and the cookie-clearing header built
// once for the rejection path are exactly what encoding them per request
// would give.
func TestPrebuiltRejections(t *testing.T) {
	for _, e := range []*Error{errNoCookie, errBadCookie, errNoSession, errExpired, errCSRF,
		errUnauth(errors.New("a fresh one"))} {
		w := httptest.NewRecorder()
		writeJSONError(w, e)
		var want bytes.Buffer
		json.NewEncoder(&want).Encode(map[string]string{"error": e.Code, "error_description": e.Description})
		if w.Body.String() != want.String() {
			t.Errorf("%s: body %q, want %q", e.Code, w.Body, want.String())
		}
		if w.Code != e.Status || w.Header().Get("Content-Type") != "application/json" ||
			w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: status %d, header %v", e.Code, w.Code, w.Header())
		}
	}
	for _, insecure := range []bool{false, true} {
		b, err := New(Options{Issuer: "https://idp.example", ClientID: "c", ClientSecret: "s",
			BaseURL: "https://app.example", InsecurePlainHTTPCookies: insecure, Logger: quietLogger})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		b.sessionCookie(w, "", -1)
		want := (&http.Cookie{Name: b.cfg.CookieName, Path: "/", MaxAge: -1, Secure: !insecure, HttpOnly: true,
			SameSite: http.SameSiteStrictMode}).String()
		if got := w.Header().Values("Set-Cookie"); len(got) != 1 || got[0] != want {
			t.Errorf("clearing cookie %q, want %q", got, want)
		}
		b.Close()
	}
}
