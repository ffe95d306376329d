package bff

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/storage"
	"github.com/gomodule/redigo/redis"
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
	a := newApp(tb, testOP(tb, opCfg), func(o *Options) {
		o.Logger = quietLogger
		if opt != nil {
			opt(o)
		}
	})
	br := a.signIn(tb)
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

// discardWriter is a ResponseWriter that allocates nothing per request.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// freshFixture is a signed-in session with a fresh token and a frozen
// clock (so no touch is due), and a prepared request carrying its cookie.
type freshFixture struct {
	b       *BFF
	store   *spyStore // nil with the default (cached) memory store
	locker  *testLocker
	locks0  int // taken by the sign-in
	req     *http.Request
	w       *discardWriter
	handler http.Handler
}

func newFreshFixture(tb testing.TB, cached bool) *freshFixture {
	tb.Helper()
	clk := newFrozenClock()
	f := &freshFixture{locker: &testLocker{inner: &storage.MemLocker{}}, w: &discardWriter{h: http.Header{}}}
	if !cached {
		f.store = newSpyStore(tb)
	}
	a, id := benchApp(tb, oidctest.Config{Now: clk.Now}, func(o *Options) {
		o.Now, o.Locker = clk.Now, f.locker
		if f.store != nil {
			o.Store = f.store
		}
	})
	f.b, f.req = a.bff, cookieRequest(a, id)
	f.handler = a.bff.RequireSession(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if _, err := f.b.authenticate(f.w, f.req); err != nil {
		tb.Fatal(err)
	}
	f.locks0 = f.locker.lockCalls("")
	if f.store != nil {
		f.store.reset()
	}
	return f
}

func (f *freshFixture) load()         { f.b.liveSession(f.w, f.req) }
func (f *freshFixture) authenticate() { f.b.authenticate(f.w, f.req) }
func (f *freshFixture) serve()        { f.handler.ServeHTTP(f.w, f.req) }

// work returns the locks taken, and the store's reads and writes (commits
// and deletes), since the fixture was made.
func (f *freshFixture) work() (locks, finds, writes int) {
	if f.store != nil {
		calls, _ := f.store.work()
		for k, n := range calls {
			if strings.HasPrefix(k, "find ") {
				finds += n
			} else {
				writes += n
			}
		}
	}
	return f.locker.lockCalls("") - f.locks0, finds, writes
}

// BenchmarkRefreshDecisionFresh measures the hot path with a fresh token:
// just loading the session (load), loading plus the refresh decision
// (authenticate), and the whole RequireSession middleware; with the
// default memory store (decoded-session cache) and with a store that is
// read on every request.
func BenchmarkRefreshDecisionFresh(b *testing.B) {
	for _, cached := range []bool{true, false} {
		name := "cache"
		if !cached {
			name = "store"
		}
		f := newFreshFixture(b, cached)
		for _, step := range []struct {
			name string
			fn   func()
		}{{"load", f.load}, {"authenticate", f.authenticate}, {"RequireSession", f.serve}} {
			b.Run(name+"/"+step.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					step.fn()
				}
			})
		}
		if locks, _, writes := f.work(); locks != 0 || writes != 0 {
			b.Fatal("the fresh-token path took a lock or wrote to the store")
		}
	}
}

// The refresh decision on a fresh token adds no store write, no lock and no
// allocation to loading the session.
func TestFreshTokenPathWritesNothing(t *testing.T) {
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			f := newFreshFixture(t, cached)
			const n = 2000
			for range n {
				f.serve()
			}
			locks, finds, writes := f.work()
			if locks != 0 || writes != 0 {
				t.Errorf("%d locks and %d store writes over %d requests", locks, writes, n)
			}
			if f.store != nil && finds != n {
				t.Errorf("%d store reads over %d requests, want one each", finds, n)
			}
			load := testing.AllocsPerRun(200, f.load)
			auth := testing.AllocsPerRun(200, f.authenticate)
			if auth != load {
				t.Errorf("the refresh decision allocates: authenticate %v allocs, loading the session %v", auth, load)
			}
			serve := testing.AllocsPerRun(200, f.serve)
			t.Logf("allocs per request: load %v, authenticate %v, RequireSession %v", load, auth, serve)
		})
	}
}

// benchLoop serves r with h, expecting want, for the benchmark's loop.
func benchLoop(b *testing.B, h http.Handler, r *http.Request, want int) {
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, r, want)
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
		b.Run(bc.name, func(b *testing.B) { benchLoop(b, bc.h, r, 200) })
	}
}

func benchReject(b *testing.B, cookie func(a *app) string) {
	a, _ := benchApp(b, oidctest.Config{}, nil)
	r := cookieRequest(a, cookie(a))
	benchLoop(b, a.bff.RequireSession(benchHandler), r, 401)
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
	a := newApp(b, testOP(b, oidctest.Config{}), func(o *Options) { o.Logger = quietLogger })
	benchLoop(b, a.bff, httptest.NewRequest("GET", a.URL+"/auth/login?returnTo=/app", nil), http.StatusSeeOther)
}

// BenchmarkCallback measures the whole callback: transaction cookie, code
// exchange, ID token verification, userinfo, index and session writes. Each
// iteration needs a fresh sign-in transaction, prepared off the clock.
func BenchmarkCallback(b *testing.B) {
	a := newApp(b, testOP(b, oidctest.Config{}), func(o *Options) { o.Logger = quietLogger })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		br := newBrowser(b)
		cb := a.startLogin(br)
		r := httptest.NewRequest("GET", cb, nil)
		for _, c := range br.Jar.Cookies(r.URL) {
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

// TestRejectStoreLookups: a flood of bad cookies costs no store lookup for
// a malformed ID and exactly one for an unknown well-formed ID.
func TestRejectStoreLookups(t *testing.T) {
	a, id := benchApp(t, oidctest.Config{}, nil)
	cs := countFinds(a)
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
	a := newApp(t, testOP(t, oidctest.Config{Users: []oidctest.User{user}}), nil)
	br := newBrowser(t)
	cb := a.startLogin(br)
	resp := br.send("GET", cb)
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
	s := a.browserSession(br)
	if len(s.rec.IDToken) < 20000 {
		t.Fatalf("ID token is only %d bytes; the test needs a huge one", len(s.rec.IDToken))
	}
	a.expect(t, br, "/api/me", 200, "")
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
		b := mustNew(t, Options{Issuer: "https://idp.example", ClientID: "c", ClientSecret: "s",
			BaseURL: "https://app.example", InsecurePlainHTTPCookies: insecure, Logger: quietLogger})
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

// TestScale measures RequireSession with many active sessions: throughput
// and CPU per request with 1,000 to 1,000,000 sessions (memory store, Redis
// with the session cache, Redis without it), the heap per session and
// Redis's bytes per session. Requests rotate over every session's cookie
// in a random order, in process, on GOMAXPROCS goroutines (scaleGroups
// says which populations are measured together). Sessions are minted straight into the
// store (sessionStore.create, what a sign-in does after the provider's
// part): a million sign-ins through HTTP would take an hour.
//
// It runs only when asked: BFF_SCALE=1 go test -run '^TestScale$' -v .
// (scripts/bench.sh does, and puts the table into BENCHMARKS.md). Knobs:
// BFF_SCALE_SIZES (default 1000,24000,100000,1000000; the first is the
// base of the ratio column), BFF_SCALE_REDIS_MAX
// (largest population on Redis, default 100000), BFF_SCALE_REQUESTS
// (per round, default 100000), BFF_SCALE_ROUNDS (default 9: many short
// rounds, so that other work on the machine weighs on every population
// alike).
func TestScale(t *testing.T) {
	if os.Getenv("BFF_SCALE") != "1" {
		t.Skip("scaling measurement: run with BFF_SCALE=1")
	}
	sizes := envInts(t, "BFF_SCALE_SIZES", []int{1000, 24000, 100000, 1000000})
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	var results []*scalePop
	for _, group := range scaleGroups(sizes) {
		t.Run(fmt.Sprint(group), func(t *testing.T) {
			results = append(results, measureScale(t, op, rs, group)...)
		})
		// The next group starts without this one's sessions: no heap for the
		// garbage collector to scan, no keys in Redis.
		if _, err := rs.Do("FLUSHALL", "ASYNC"); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
	}
	printScale(results, sizes[0])
}

// scaleGroups puts the populations of up to 24,000 sessions in one group,
// measured together in interleaved rounds (their ratio is the figure
// issue 17 asks for), and each larger one in a group of its own.
func scaleGroups(sizes []int) [][]int {
	var small []int
	var groups [][]int
	for _, n := range sizes {
		if n <= 24000 {
			small = append(small, n)
		} else {
			groups = append(groups, []int{n})
		}
	}
	if small != nil {
		groups = append([][]int{small}, groups...)
	}
	return groups
}

// measureScale creates the group's populations on every store and measures
// them in interleaved rounds, rotating the order each round. The group's
// sessions are released when t ends (its apps are closed then).
func measureScale(t *testing.T, op *oidctest.Provider, rs *redistest.Server, sizes []int) []*scalePop {
	redisMax := envInt(t, "BFF_SCALE_REDIS_MAX", 100000)
	requests := envInt(t, "BFF_SCALE_REQUESTS", 100000)
	rounds := envInt(t, "BFF_SCALE_ROUNDS", 9)
	var pops []*scalePop
	for _, variant := range []string{"memory", "redis", "redis-nocache"} {
		for _, n := range sizes {
			if variant != "memory" && n > redisMax {
				continue
			}
			pops = append(pops, newScalePop(t, op, rs, variant, n))
		}
	}
	for r := range rounds {
		for i := range pops {
			pops[(i+r)%len(pops)].run(t, requests)
		}
	}
	for _, p := range pops {
		p.bff, p.h, p.srv, p.client, p.cookies, p.reads = nil, nil, nil, nil, nil, nil // keep the figures only
	}
	return pops
}

func printScale(pops []*scalePop, baseSize int) {
	fmt.Println("| store | sessions | req/s (median) | × 1,000 sessions | CPU µs/req | × 1,000 sessions by CPU | store reads/req | memory store bytes/session | Redis bytes/session |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	base, baseCPU := map[string]float64{}, map[string]float64{}
	for _, p := range pops {
		med, cpu := median(p.rates), median(p.cpu)
		if p.n == baseSize {
			base[p.variant], baseCPU[p.variant] = med, cpu
		}
		heapBytes, redisBytes := "—", "—"
		if p.heapBytes > 0 {
			heapBytes = fmt.Sprint(p.heapBytes)
		}
		if p.redisBytes > 0 {
			redisBytes = fmt.Sprint(p.redisBytes)
		}
		fmt.Printf("| %s | %d | %.0f | %.2f | %.1f | %.2f | %.3f | %s | %s |\n", p.variant, p.n, med, med/base[p.variant],
			cpu, baseCPU[p.variant]/cpu, median(p.missed), heapBytes, redisBytes)
	}
}

// scalePop is one population of sessions on one BFF.
type scalePop struct {
	variant    string
	n          int
	bff        *BFF
	h          http.Handler
	srv        *httptest.Server // h over HTTP on loopback, for the measured rounds
	client     *http.Client
	cookies    []string
	heapBytes  int64 // per session
	redisBytes int64 // per session
	rates, cpu []float64
	reads      *countingBackend
	missed     []float64 // store reads per request
}

func newScalePop(t *testing.T, op *oidctest.Provider, rs *redistest.Server, variant string, n int) *scalePop {
	var used func() int64
	a := newApp(t, op, func(o *Options) {
		o.Logger, o.TouchInterval = quietLogger, time.Hour
		if variant != "memory" {
			o.Redis, o.DisableSessionCache = NewRedisPool(rs.Addr), variant == "redis-nocache"
			used = func() int64 { return redisUsedMemory(t, rs) }
		}
	})
	if a.bff.store.bus != nil {
		waitHealthy(t, a)
	}
	p := &scalePop{variant: variant, n: n, bff: a.bff, h: a.bff.RequireSession(benchHandler), reads: countFinds(a)}
	p.srv = httptest.NewServer(p.h)
	t.Cleanup(p.srv.Close)
	p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: scaleConns, DisableCompression: true}}
	t.Cleanup(p.client.CloseIdleConnections)
	heap0, redis0 := heapAlloc(), int64(0)
	if used != nil {
		redis0 = used()
	}
	p.cookies = mintSessions(t, a.bff, n)
	if used != nil {
		p.redisBytes = (used() - redis0) / int64(n)
	} else {
		p.heapBytes = int64(heapAlloc()-heap0) / int64(n) // the memory store's records and indexes
	}
	// Every session is served (and the cache filled as far as it goes).
	for _, c := range p.cookies {
		if code := p.serve(c); code != 200 {
			t.Fatalf("%s, %d sessions: a minted session answered %d", variant, n, code)
		}
	}
	if c := a.bff.store.cache; c != nil {
		var bytes int64
		for i := range c.shards {
			bytes += c.shards[i].bytes
		}
		if bytes > a.bff.cfg.SessionCacheBytes {
			t.Fatalf("the cache holds %d bytes, more than SessionCacheBytes (%d)", bytes, a.bff.cfg.SessionCacheBytes)
		}
	}
	if used == nil {
		// README's budget for the memory store: its sessions, plus the cache.
		budget := int64(n)*memoryBytesPerSession + a.bff.cfg.SessionCacheBytes
		if held := int64(heapAlloc() - heap0); held > budget {
			t.Fatalf("%d sessions in the memory store hold %d bytes of heap with the cache, more than the budget (%d)", n, held, budget)
		}
	}
	return p
}

// memoryBytesPerSession is README's budget for one session in the memory
// store with typical tokens (typicalSession), outside the session cache.
const memoryBytesPerSession = 4096

// mintSessions creates n sessions of distinct users with typical token
// sizes, 32 at a time, and returns their cookie values.
func mintSessions(t *testing.T, b *BFF, n int) []string {
	ids := make([]string, n)
	parallelFor(n, 32, func(i int) {
		ids[i] = rand.Text()
		s := typicalSession(ids[i])
		s.rec.AccessExpiry = time.Now().Add(24 * time.Hour).UnixNano()
		if err := b.store.create(context.Background(), s, ""); err != nil {
			t.Errorf("mint: %v", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	for i, id := range ids {
		ids[i] = "theme=dark; " + b.cfg.CookieName + "=" + id
	}
	return ids
}

func (p *scalePop) serve(cookie string) int {
	r := httptest.NewRequest("GET", "/api/me", nil)
	r.Header["Cookie"] = []string{cookie}
	w := httptest.NewRecorder()
	p.h.ServeHTTP(w, r)
	return w.Code
}

// scaleConns is the number of concurrent keep-alive connections of a
// measured round.
const scaleConns = 16

// run sends requests over HTTP (net/http's server and client on loopback,
// in this process, on scaleConns connections) over the population in a
// random order, and records the rate and the process's CPU per request:
// what a request costs with a real HTTP server around the guard. An
// unmeasured pass over every session comes first: "active" sessions are
// those used within the cache's age bound, and the other populations'
// rounds took time.
func (p *scalePop) run(t *testing.T, requests int) {
	for _, c := range p.cookies {
		p.serve(c)
	}
	order := mrand.Perm(p.n)
	var next atomic.Int64
	var bad atomic.Int64
	cpu0, start, reads0 := processCPU(), time.Now(), p.reads.finds.Load()
	var wg sync.WaitGroup
	for range scaleConns {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(requests); i = next.Add(1) - 1 {
				if p.get(p.cookies[order[int(i)%p.n]]) != 200 {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	d, cpu := time.Since(start), processCPU()-cpu0
	if bad.Load() > 0 {
		t.Fatalf("%s, %d sessions: %d requests failed", p.variant, p.n, bad.Load())
	}
	p.rates = append(p.rates, float64(requests)/d.Seconds())
	p.cpu = append(p.cpu, float64(cpu.Microseconds())/float64(requests))
	p.missed = append(p.missed, float64(p.reads.finds.Load()-reads0)/float64(requests))
}

// get sends GET /api/me with cookie over HTTP and returns the status.
func (p *scalePop) get(cookie string) int {
	req, _ := http.NewRequest("GET", p.srv.URL+"/api/me", nil)
	req.Header["Cookie"] = []string{cookie}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func redisUsedMemory(t *testing.T, rs *redistest.Server) int64 {
	info, err := redis.String(rs.Do("INFO", "memory"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// envInt is the positive integer in the environment variable name, or def.
func envInt(t *testing.T, name string, def int) int { return envInts(t, name, []int{def})[0] }

// envInts is the comma-separated positive integers in the environment
// variable name, or def.
func envInts(t *testing.T, name string, def []int) []int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want positive integers separated by commas", name, s)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkCacheGet: a lookup's cost with 1,000 to 1,000,000 cached
// sessions, on 1, 2 and 8 threads (go test -bench CacheGet -cpu 1,2,8).
func BenchmarkCacheGet(b *testing.B) {
	for _, n := range []int{1000, 24000, 100000, 1000000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c := newCache(0, 1<<40, nil, nil)
			ids := make([]string, n)
			now := time.Now()
			s := typicalSession(rand.Text())
			for i := range ids {
				ids[i] = rand.Text()
				c.put(ids[i], s, c.seq(), now)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(7919))
				for pb.Next() {
					i++
					if c.get(ids[i%n], now) == nil {
						b.Fatal("miss")
					}
				}
			})
		})
	}
}

// BenchmarkCachePut: an insertion into a full cache (each one evicts).
func BenchmarkCachePut(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := typicalSession(rand.Text())
			c := newCache(0, int64(n)*entrySize(s), nil, nil)
			now := time.Now()
			ids := make([]string, 4*n)
			for i := range ids {
				ids[i] = rand.Text()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				c.put(ids[i%len(ids)], s, c.seq(), now)
			}
		})
	}
}

// benchUpstream is the upstream of the benchmarks: a small JSON answer.
func benchUpstream(b *testing.B) *url.URL {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":1,"name":"item"}`)
	}))
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/v1")
	return u
}

// BenchmarkProxy: one proxied GET in process, to a real loopback upstream.
// "handler" is the proxy alone (the session already in the context, as
// RequireSession leaves it); "RequireSession" includes the session lookup.
func BenchmarkProxy(b *testing.B) {
	a, id := benchApp(b, oidctest.Config{}, nil)
	s, err := a.bff.store.load(context.Background(), id, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	proxy := http.StripPrefix("/api/upstream", a.bff.Proxy(benchUpstream(b), ProxyOptions{}))

	b.Run("handler", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/api/upstream/items/1", nil)
		req = req.WithContext(context.WithValue(req.Context(), sessionKey, s))
		benchLoop(b, proxy, req, 200)
	})
	b.Run("RequireSession", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/api/upstream/items/1", nil)
		req.Header.Set("Cookie", a.bff.cfg.CookieName+"="+id)
		benchLoop(b, a.bff.RequireSession(proxy), req, 200)
	})
}

// BenchmarkProxyBareReverseProxy is the baseline: httputil.ReverseProxy
// with SetURL to the same kind of upstream.
func BenchmarkProxyBareReverseProxy(b *testing.B) {
	target := benchUpstream(b)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
	req := httptest.NewRequest("GET", "/api/upstream/items/1", nil)
	benchLoop(b, http.StripPrefix("/api/upstream", rp), req, 200)
}

// BenchmarkRequireSessionMemory and BenchmarkRequireSessionRedis: the hot
// path on each store; with Redis, with and without the session cache, and
// the Redis commands a request costs.
func BenchmarkRequireSessionMemory(b *testing.B) {
	a, id := benchApp(b, oidctest.Config{}, nil)
	benchLoop(b, a.bff.RequireSession(benchHandler), cookieRequest(a, id), 200)
}

func BenchmarkRequireSessionRedis(b *testing.B) {
	rs := redistest.Start(b)
	for _, noCache := range []bool{false, true} {
		b.Run(map[bool]string{false: "cache", true: "nocache"}[noCache], func(b *testing.B) {
			a, id := benchApp(b, oidctest.Config{}, func(o *Options) { o.Redis, o.DisableSessionCache = rs.Pool(), noCache })
			if !noCache {
				waitHealthy(b, a)
			}
			h, r := a.bff.RequireSession(benchHandler), cookieRequest(a, id)
			serve(b, h, r, 200) // reads the session into the cache
			rs.ResetStats()
			benchLoop(b, h, r, 200)
			total, _ := dataCommands(rs.CommandStats())
			b.ReportMetric(float64(total)/float64(b.N), "redis-cmds/op")
		})
	}
}
