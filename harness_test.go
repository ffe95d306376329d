package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/storage"
	"github.com/gobff/bff/internal/testsupport"
)

// The test harness: a real test OpenID Provider on its own origin
// (http://localhost:port), an app server using a BFF on another origin
// (http://127.0.0.1:port), and a "browser": an http.Client with a cookie jar.

// testOP starts the programmable provider.
func testOP(t testing.TB, cfg oidctest.Config) *oidctest.Provider {
	t.Helper()
	if cfg.SigningAlg == "" {
		// ES256 keys are generated in microseconds, RSA keys in up to a
		// second; TestLoginFlow and the examples cover RS256.
		cfg.SigningAlg = "ES256"
	}
	op := oidctest.New(cfg)
	srv := httptest.NewUnstartedServer(op)
	srv.Start()
	t.Cleanup(srv.Close)
	op.SetIssuer(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	return op
}

// app is an app server with a BFF mounted at /auth/ and API routes.
type app struct {
	t   testing.TB
	bff *BFF
	srv *httptest.Server
	op  *oidctest.Provider
	URL string

	h     *atomic.Pointer[http.Handler] // what srv serves
	extra map[string]http.Handler       // routes added by tests (route)
}

// testKey is a fixed secret key so that several instances interoperate.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// newApp starts an app whose BFF talks to op and waits for discovery. opt
// may change the options.
func newApp(t testing.TB, op *oidctest.Provider, opt func(*Options)) *app {
	t.Helper()
	a := newUnreadyApp(t, op, opt)
	waitReady(t, a)
	return a
}

// waitReady waits for a's discovery.
func waitReady(t testing.TB, a *app) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.bff.Ready(ctx); err != nil {
		t.Fatalf("discovery: %v", err)
	}
}

// appHooks holds the hooks that an option function of newApp set for the
// Options it was given (see hooksOf), until newUnreadyApp passes them to
// newBFF.
var appHooks sync.Map // *Options -> *hooks

// hooksOf returns the hooks of the app being built with o, for an option
// function of newApp to set as it sets o's fields:
//
//	newApp(t, op, func(o *Options) { o.Now, hooksOf(o).newTimer = clock.Now, clock.Timer })
func hooksOf(o *Options) *hooks {
	h, _ := appHooks.LoadOrStore(o, new(hooks))
	return h.(*hooks)
}

// newUnreadyApp is newApp without waiting for discovery, for providers that
// are down or refused.
func newUnreadyApp(t testing.TB, op *oidctest.Provider, opt func(*Options)) *app {
	t.Helper()
	a := &app{t: t, op: op}
	var h atomic.Pointer[http.Handler]
	notFound := http.NotFoundHandler()
	h.Store(&notFound)
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*h.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	a.URL = a.srv.URL
	o := Options{
		Issuer: op.Issuer(), ClientID: op.ClientID(), ClientSecret: op.ClientSecret(), BaseURL: a.URL,
		SecretKeys: [][]byte{testKey},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(testsupport.TestWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opt != nil {
		opt(&o)
	}
	var hk hooks
	if set, ok := appHooks.LoadAndDelete(&o); ok {
		hk = *set.(*hooks)
	}
	b, err := newBFF(o, hk)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	a.bff = b
	a.h = &h
	mux := a.mux()
	h.Store(&mux)
	return a
}

// route adds a route (a ServeMux pattern) to the app, for a test's own
// handler.
func (a *app) route(pattern string, handler http.Handler) {
	if a.extra == nil {
		a.extra = map[string]http.Handler{}
	}
	a.extra[pattern] = handler
	mux := a.mux()
	a.h.Store(&mux)
}

func (a *app) mux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/auth/", a.bff)
	mux.Handle("GET /api/me", a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		tok, _ := TokenFrom(r.Context())
		json.NewEncoder(w).Encode(map[string]any{"sub": u.Subject, "email": u.Email, "name": u.Name,
			"tokenExpiresAt": tok.Expiry.UTC().Format(time.RFC3339)})
	})))
	// /api/token exists only in tests, to check which token a handler got;
	// a real app never sends a token to the browser.
	mux.Handle("GET /api/token", a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := TokenFrom(r.Context())
		io.WriteString(w, tok.AccessToken)
	})))
	mux.Handle("POST /api/echo", a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, r.Body)
	})))
	// Pages: /page needs a session (RequireLogin), /public personalises
	// when there is one (OptionalSession). Both accept every method.
	mux.Handle("/page", a.bff.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		io.WriteString(w, "page for "+u.Name)
	})))
	mux.Handle("/public", a.bff.OptionalSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := UserFrom(r.Context()); ok {
			tok, _ := TokenFrom(r.Context())
			io.WriteString(w, "hello "+u.Name+" until "+tok.Expiry.UTC().Format(time.RFC3339))
			return
		}
		io.WriteString(w, "hello guest")
	})))
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app page") })
	for pattern, h := range a.extra {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "home") })
	return mux
}

// env is a test's usual setup: a provider and an app on one frozen clock,
// the app's store a spyStore, and a browser.
type env struct {
	t     *testing.T
	op    *oidctest.Provider
	a     *app
	br    *browser
	clock *frozenClock
	t0    time.Time // the clock's start
	store *spyStore
	id    string // the browser's session, after signIn
}

// longTokens is a provider whose access tokens live 48 hours, so that
// moving the clock by hours does not make every request refresh.
var longTokens = oidctest.Config{AccessTokenTTL: 48 * time.Hour}

// newEnv starts a provider (cfg on the env's clock; misbehave, if given,
// changes it before the app's discovery) and an app (opt changes its
// options after the clock and the store are set).
func newEnv(t *testing.T, cfg oidctest.Config, opt func(*Options), misbehave ...func(*oidctest.Misbehavior)) *env {
	t.Helper()
	e := &env{t: t, clock: newFrozenClock(), store: newSpyStore(t), br: newBrowser(t)}
	e.t0 = e.clock.Now()
	cfg.Now = e.clock.Now
	e.op = testOP(t, cfg)
	for _, m := range misbehave {
		if m != nil {
			e.op.Misbehave(m)
		}
	}
	e.a = newApp(t, e.op, func(o *Options) {
		o.Now, o.Store = e.clock.Now, e.store
		hooksOf(o).newTimer = e.clock.Timer
		if opt != nil {
			opt(o)
		}
	})
	return e
}

// onMemory is opt on the default store (memory, with the session cache)
// instead of the env's spyStore.
func onMemory(opt func(*Options)) func(*Options) {
	return func(o *Options) {
		o.Store = nil
		if opt != nil {
			opt(o)
		}
	}
}

// signIn signs the browser in and keeps its session ID.
func (e *env) signIn() *env {
	e.t.Helper()
	e.a.login(e.br)
	id, ok := e.a.sessionCookie(e.br)
	if !ok {
		e.t.Fatal("no session cookie after sign-in")
	}
	e.id = id
	return e
}

// token GETs /api/token: the status and the token the handler got.
func (e *env) token() (int, string) {
	e.t.Helper()
	return e.a.status(e.br, "GET", "/api/token")
}

// rec returns the signed-in session's record as stored.
func (e *env) rec() *session {
	e.t.Helper()
	return mustSession(e.t, e.a, e.id)
}

// offsetClock is an injectable clock (Options.Now, oidctest.Config.Now)
// that runs with real time plus an offset that tests move forward.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// frozenClock is an injectable clock that starts at the real time and
// moves only when told. Its timers (Timer, for hooks.newTimer) fire when
// Advance reaches them.
type frozenClock struct {
	ns     atomic.Int64
	mu     sync.Mutex // orders Timer and Advance
	timers []*fakeTimer
}

type fakeTimer struct {
	due int64
	c   chan time.Time
}

func newFrozenClock() *frozenClock {
	c := &frozenClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *frozenClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock and fires the timers that are due.
func (c *frozenClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.ns.Add(int64(d))
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.due > now {
			return false
		}
		t.c <- time.Unix(0, now)
		return true
	})
}

// Timer is a timerFunc on the clock.
func (c *frozenClock) Timer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{due: c.ns.Load() + int64(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.Now()
		return t.c, func() bool { return false }
	}
	c.timers = append(c.timers, t)
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := len(c.timers)
		c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == t })
		return len(c.timers) < n
	}
}

// pending counts the timers not yet fired or stopped.
func (c *frozenClock) pending() int { return c.dueWithin(1<<63 - 1) }

// dueWithin counts the pending timers due within d from now.
func (c *frozenClock) dueWithin(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.due-c.ns.Load() <= int64(d) {
			n++
		}
	}
	return n
}

// logBuffer collects an app's log, for tests of what is logged: set
// Options.Logger to its Logger() (or JSONLogger(), for Records and Find).
type logBuffer = testsupport.LogBuffer

// waitStatus GETs path until it answers want, while it answers 503 (a
// component recovering); any other status fails.
func waitStatus(t testing.TB, a *app, br *browser, path string, want int) {
	t.Helper()
	testsupport.WaitUntil(t, 10*time.Second, fmt.Sprintf("GET %s to answer %d", path, want), func() bool {
		code, body := a.status(br, "GET", path)
		if code != want && code != http.StatusServiceUnavailable {
			t.Fatalf("GET %s = %d %s while waiting for %d", path, code, body, want)
		}
		return code == want
	})
}

// browser is testsupport.Browser with the root tests' verbs: do leaves
// the body to the caller (a stream), send and follow read it.
type browser struct{ *testsupport.Browser }

func newBrowser(t testing.TB) *browser { return &browser{testsupport.NewBrowser(t)} }

// do sends a request; headers are pairs of name, value.
func (br *browser) do(method, u string, body io.Reader, headers ...string) *http.Response {
	t := br.T()
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := br.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp
}

func (br *browser) get(u string) *http.Response { return br.do("GET", u, nil) }

// send is do for a test that reads only the status, the headers and the
// cookies (so never for a stream).
func (br *browser) send(method, u string, headers ...string) *http.Response {
	return br.Do(method, u, "", headers...).Response
}

// follow GETs u and follows redirects until a non-redirect response, which
// it returns with its body.
func (br *browser) follow(u string) (*http.Response, string) {
	r := br.Follow(br.Get(u))
	return r.Response, r.Body
}

// login signs the browser in through the whole flow and returns the final
// page's response.
func (a *app) login(br *browser) (*http.Response, string) {
	a.t.Helper()
	resp, body := br.follow(a.URL + "/auth/login?returnTo=/app")
	if resp.StatusCode != 200 || body != "app page" {
		a.t.Fatalf("login ended with %d %q at %s", resp.StatusCode, body, resp.Request.URL)
	}
	return resp, body
}

// signIn returns a new browser, signed in to the app.
func (a *app) signIn(t testing.TB) *browser {
	t.Helper()
	br := newBrowser(t)
	a.login(br)
	return br
}

// signInID is signIn that also returns the browser's session ID.
func (a *app) signInID(t testing.TB) (*browser, string) {
	t.Helper()
	br := a.signIn(t)
	id, ok := a.sessionCookie(br)
	if !ok {
		t.Fatal("no session cookie after sign-in")
	}
	return br, id
}

// startLogin runs /login and the provider's authorize step, and returns the
// callback URL the provider sent the browser to (not yet visited).
func (a *app) startLogin(br *browser) string {
	a.t.Helper()
	return a.startLoginTo(br, "/app")
}

// startLoginTo is startLogin with another returnTo.
func (a *app) startLoginTo(br *browser, returnTo string) string {
	a.t.Helper()
	resp := br.send("GET", a.URL+"/auth/login?returnTo="+url.QueryEscape(returnTo))
	if resp.StatusCode != http.StatusSeeOther {
		a.t.Fatalf("login: status %d", resp.StatusCode)
	}
	resp = br.send("GET", resp.Header.Get("Location"))
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, a.URL+"/auth/callback") {
		a.t.Fatalf("authorize did not redirect to the callback: %d %q", resp.StatusCode, cb)
	}
	return cb
}

// status GETs path and returns the status and body.
func (a *app) status(br *browser, method, path string, headers ...string) (int, string) {
	a.t.Helper()
	r := br.Do(method, a.URL+path, "", headers...)
	return r.StatusCode, r.Body
}

// expect GETs path and fails the test at once unless it answers want;
// when says at which step ("": none needed).
func (a *app) expect(t testing.TB, br *browser, path string, want int, when string) {
	t.Helper()
	if code, body := a.status(br, "GET", path); code != want {
		if when != "" {
			when += ": "
		}
		t.Fatalf("%sGET %s = %d %.200s, want %d", when, path, code, body, want)
	}
}

// sessionCookie returns the browser's session cookie for the app, if any.
func (a *app) sessionCookie(br *browser) (string, bool) {
	c, ok := br.Cookie(a.URL, a.bff.cfg.CookieName)
	if !ok {
		return "", false
	}
	return c.Value, true
}

// txCookies returns the browser's sign-in transaction cookies for the app.
func (a *app) txCookies(br *browser) []*http.Cookie {
	u, _ := url.Parse(a.URL)
	var out []*http.Cookie
	for _, c := range br.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, a.bff.txPrefix()) {
			out = append(out, c)
		}
	}
	return out
}

// setCookie puts a cookie into the browser's jar for the app ("": removes
// it).
func (a *app) setCookie(br *browser, name, value string) {
	u, _ := url.Parse(a.URL)
	c := &http.Cookie{Name: name, Value: value, Path: "/"}
	if value == "" {
		c.MaxAge = -1
	}
	br.Jar.SetCookies(u, []*http.Cookie{c})
}

// storeSession reads a session record straight from the store.
func (a *app) storeSession(id string) (*session, error) {
	return a.bff.store.read(context.Background(), recordName(id))
}

// mustSession reads a session record that must be there.
func mustSession(t testing.TB, a *app, id string) *session {
	t.Helper()
	s, err := a.storeSession(id)
	if err != nil {
		t.Fatalf("session record: %v", err)
	}
	return s
}

// browserSession reads the stored session of the browser's cookie.
func (a *app) browserSession(br *browser) *session {
	a.t.Helper()
	id, _ := a.sessionCookie(br)
	return mustSession(a.t, a, id)
}

// mem is the app's memory backend (the default store).
func (a *app) mem() *storage.Memory { return a.bff.store.be.(*storage.Memory) }

// gate holds one step of a test (a provider's answer, a store write) until
// the test opens it, and tells the test when the step has been reached:
// races are forced in order, never left to timing.
type gate struct {
	reached, opened chan struct{}
	arrive, open    sync.Once
}

func newGate() *gate { return &gate{reached: make(chan struct{}), opened: make(chan struct{})} }

// pass is called by the held step: it reports the arrival and waits until
// the gate opens or ctx ends.
func (g *gate) pass(ctx context.Context) error {
	g.arrive.Do(func() { close(g.reached) })
	select {
	case <-g.opened:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release opens the gate for good.
func (g *gate) release() { g.open.Do(func() { close(g.opened) }) }

// await waits until a step has reached the gate.
func (g *gate) await(t testing.TB, what string) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s to reach the gate", what)
	}
}

// testLocker is the tests' Locker. It excludes like the in-process lock,
// or, with leaseLost, grants every lock at once (as a lease that ran out
// under a slow holder would), and counts the Lock calls per name.
type testLocker struct {
	inner     Locker
	leaseLost bool
	mu        sync.Mutex
	calls     map[string]int
}

func (l *testLocker) Lock(ctx context.Context, name string, ttl time.Duration) (func(), error) {
	l.mu.Lock()
	if l.calls == nil {
		l.calls = map[string]int{}
	}
	l.calls[name]++
	l.mu.Unlock()
	if l.leaseLost {
		return func() {}, nil
	}
	return l.inner.Lock(ctx, name, ttl)
}

// lockCalls counts the Lock calls whose name ends with suffix.
func (l *testLocker) lockCalls(suffix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for name, c := range l.calls {
		if strings.HasSuffix(name, suffix) {
			n += c
		}
	}
	return n
}

// spyStore is the tests' custom Store: storage.Memory behind the
// context-aware scs.CtxStore methods, honouring the context as most stores
// do. It counts calls and bytes written by operation and kind of record
// ("commit s", "find sub"), and calls the hook, when set, before each call:
// the one place where a test slows a store down, holds it or makes it fail.
type spyStore struct {
	*storage.Memory
	mu      sync.Mutex
	counts  map[string]int
	written int
	expiry  map[string]time.Time // of each key's last commit
	failing map[string]int       // op -> calls left to fail (failNext)
	hook    atomic.Pointer[func(ctx context.Context, op, key string) error]
}

func newSpyStore(t testing.TB) *spyStore {
	ms := storage.NewMemory(time.Minute)
	t.Cleanup(ms.Close)
	return &spyStore{Memory: ms, counts: map[string]int{}, expiry: map[string]time.Time{}, failing: map[string]int{}}
}

// failNext makes the next n calls of op ("find", "commit", "delete") fail,
// as a store blip would.
func (s *spyStore) failNext(op string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing[op] = n
}

// setHook sets (nil: removes) the function called before each store call.
func (s *spyStore) setHook(f func(ctx context.Context, op, key string) error) {
	if f == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&f)
}

func (s *spyStore) before(ctx context.Context, op, key string, n int) error {
	kind, _, _ := strings.Cut(key, ":")
	s.mu.Lock()
	s.counts[op+" "+kind]++
	s.written += n
	blip := s.failing[op] > 0
	if blip {
		s.failing[op]--
	}
	s.mu.Unlock()
	if blip {
		return errors.New("store blip")
	}
	if h := s.hook.Load(); h != nil {
		if err := (*h)(ctx, op, key); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (s *spyStore) FindCtx(ctx context.Context, key string) ([]byte, bool, error) {
	if err := s.before(ctx, "find", key, 0); err != nil {
		return nil, false, err
	}
	return s.Memory.Find(key)
}

func (s *spyStore) CommitCtx(ctx context.Context, key string, b []byte, exp time.Time) error {
	if err := s.before(ctx, "commit", key, len(key)+len(b)); err != nil {
		return err
	}
	s.mu.Lock()
	s.expiry[key] = exp
	s.mu.Unlock()
	return s.Memory.Commit(key, b, exp)
}

func (s *spyStore) DeleteCtx(ctx context.Context, key string) error {
	if err := s.before(ctx, "delete", key, len(key)); err != nil {
		return err
	}
	return s.Memory.Delete(key)
}

func (s *spyStore) Find(key string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), key)
}

func (s *spyStore) Commit(key string, b []byte, exp time.Time) error {
	return s.CommitCtx(context.Background(), key, b, exp)
}

func (s *spyStore) Delete(key string) error { return s.DeleteCtx(context.Background(), key) }

// work returns the calls and bytes written so far.
func (s *spyStore) work() (calls map[string]int, written int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts), s.written
}

// reset forgets the calls counted so far.
func (s *spyStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
	s.written = 0
}

// writes counts the commits of one kind of record ("s", "sub", "jti").
func (s *spyStore) writes(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts["commit "+kind]
}

// expiries returns the expiry of the last commit of each key with prefix.
func (s *spyStore) expiries(prefix string) map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	for k, exp := range s.expiry {
		if strings.HasPrefix(k, prefix) {
			out[k] = exp
		}
	}
	return out
}

// live returns the keys of one kind of record that the store holds,
// unexpired, sorted.
func (s *spyStore) live(kind string) []string {
	var out []string
	for k := range s.expiries(kind + ":") {
		if _, found, _ := s.Memory.Find(k); found {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// parallelFor runs f(i) for every i below n on workers goroutines.
func parallelFor(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		})
	}
	wg.Wait()
}

// countingBackend counts the lookups that reach an app's own backend, below
// its session cache: where a custom Store (spyStore) would change the path
// measured. countFinds puts one in.
type countingBackend struct {
	storage.Backend
	finds atomic.Int64
}

func (s *countingBackend) Get(ctx context.Context, key string) ([]byte, bool, error) {
	s.finds.Add(1)
	return s.Backend.Get(ctx, key)
}

// countFinds counts the lookups of a's backend from now on.
func countFinds(a *app) *countingBackend {
	cs := &countingBackend{Backend: a.bff.store.be}
	a.bff.store.be = cs
	return cs
}
