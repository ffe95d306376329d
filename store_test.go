package bff

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/record"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/redisx"
	"github.com/gobff/bff/internal/storage"
	"github.com/gobff/bff/internal/testsupport"
)

// Tests of the session store: an ended session stays ended, whatever write
// was in flight when it ended, on every kind of store; the circuit breaker
// counts only the store's failures; a user's sessions are bounded and a
// sign-in costs the same however many sessions the user has had.

// endRace is a signed-in session about to race a write (a refresh held at
// the token endpoint, or a touch held in the store) against its end. With
// Redis there are two instances: the write runs on the first, the end on
// the last.
type endRace struct {
	t       *testing.T
	op      *oidctest.Provider
	front   *opFront
	clk     *frozenClock
	store   *spyStore // the custom store, if any
	apps    []*app
	lockers []*testLocker
	br      *browser
	id      string
	s       *session // as signed in

	mu      sync.Mutex
	issued  []string // refresh tokens in the held token responses
	revoked []string // tokens sent to the revocation endpoint
}

// newEndRace signs a browser in on a "memory", "custom" (spyStore) or
// "redis" (two instances) store.
func newEndRace(t *testing.T, kind string, leaseLost bool) *endRace {
	t.Helper()
	e := &endRace{t: t, clk: newFrozenClock()}
	e.op, e.front = frontedOP(t, oidctest.Config{Now: e.clk.Now, SigningAlg: "ES256"})
	var rs *redistest.Server
	n := 1
	switch kind {
	case "custom":
		e.store = newSpyStore(t)
	case "redis":
		rs, n = redistest.Start(t), 2
	}
	for i := range n {
		l := &testLocker{inner: &storage.MemLocker{}, leaseLost: leaseLost}
		e.lockers = append(e.lockers, l)
		e.apps = append(e.apps, newApp(t, e.op, func(o *Options) {
			o.Now, o.Locker = e.clk.Now, l
			if e.store != nil {
				o.Store = e.store
			}
			if rs != nil {
				o.Redis = rs.Pool()
				l.inner = redisx.NewLocker(rs.Pool(), redisPrefix)
				if i > 0 {
					o.BaseURL = e.apps[0].URL
				}
			}
		}))
	}
	e.br = newBrowser(t)
	e.apps[0].login(e.br)
	e.id, _ = e.apps[0].sessionCookie(e.br)
	e.s, _ = e.apps[0].storeSession(e.id)
	return e
}

// holdTokenResponses holds the provider's token responses (the grant done,
// its answer not yet sent) until the gate opens.
func (e *endRace) holdTokenResponses(g *gate) {
	e.front.set("/token", func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		e.op.ServeHTTP(rec, r)
		var tok struct {
			RefreshToken string `json:"refresh_token"`
		}
		json.Unmarshal(rec.Body.Bytes(), &tok)
		e.mu.Lock()
		e.issued = append(e.issued, tok.RefreshToken)
		e.mu.Unlock()
		g.pass(r.Context())
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
	e.front.set("/revoke", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		e.mu.Lock()
		e.revoked = append(e.revoked, r.PostForm.Get("token"))
		e.mu.Unlock()
		e.op.ServeHTTP(w, r)
	})
}

// newTokenRevoked reports whether the refresh token issued during the race
// was revoked at the provider.
func (e *endRace) newTokenRevoked() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.issued) == 1 && e.issued[0] != "" && slices.Contains(e.revoked, e.issued[0])
}

// race runs write (a request on the first instance that the gate holds)
// and end (on the last instance) so that end starts while write is held;
// it opens the gate once end has finished or (with a working lock) is
// waiting for the session's lock.
func (e *endRace) race(g *gate, write, end func()) {
	e.t.Helper()
	var wg sync.WaitGroup
	wg.Go(write)
	g.await(e.t, "the write")
	ended := make(chan struct{})
	go func() { defer close(ended); end() }()
	key := recordName(e.id)
	last := e.lockers[len(e.lockers)-1]
	before := last.lockCalls(key)
	// With a lock, the end waits for the write's lock; with a lease lost
	// the end goes ahead, and the write resumes only once it has finished.
	testsupport.WaitUntil(e.t, 10*time.Second, "the end to finish or wait for the lock", func() bool {
		select {
		case <-ended:
			return true
		default:
			return !last.leaseLost && last.lockCalls(key) > before
		}
	})
	g.release()
	<-ended
	wg.Wait()
}

// checkEnded: the old cookie answers 401 on every instance, no record is
// left, and the user has no session to list or revoke.
func (e *endRace) checkEnded() {
	e.t.Helper()
	for i, a := range e.apps {
		expect401Within(e.t, a, browserWithCookie(e.t, e.apps[0], e.id), "/api/me", 100*time.Millisecond)
		if _, err := a.storeSession(e.id); err != errNotFound {
			e.t.Fatalf("instance %d: the ended session's record is back (%v)", i, err)
		}
	}
	ctx := context.Background()
	a := e.apps[0]
	if list, err := a.bff.Sessions(ctx, e.s.rec.Subject); err != nil || len(list) != 0 {
		e.t.Fatalf("Sessions after the end = %d, %v; want none", len(list), err)
	}
}

// enders are the ways a session ends, run on the last instance.
var enders = []struct {
	name string
	end  func(e *endRace)
}{
	{"logout", func(e *endRace) {
		a := e.apps[len(e.apps)-1]
		resp := browserWithCookie(e.t, e.apps[0], e.id).do("POST", a.URL+"/auth/logout", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			e.t.Errorf("logout = %d", resp.StatusCode)
		}
	}},
	{"RevokeSessions", func(e *endRace) {
		if n, err := e.apps[len(e.apps)-1].bff.RevokeSessions(context.Background(), e.s.rec.Subject); err != nil || n != 1 {
			e.t.Errorf("RevokeSessions = %d, %v; want 1", n, err)
		}
	}},
	{"backchannel", func(e *endRace) {
		a := e.apps[len(e.apps)-1]
		if code, _, body := a.backchannel(e.op.LogoutToken(e.s.rec.Subject, e.s.rec.SID, nil)); code != 200 {
			e.t.Errorf("back-channel logout = %d %s", code, body)
		}
	}},
}

// A session ended while its refresh is in flight stays ended: the refresh's
// write, which read the record before the end, does not bring it back. On
// memory, a custom store and two instances on Redis; with the lock working,
// and with a lock whose lease ran out (only the conditional write stands).
func TestEndedStaysEndedDuringRefresh(t *testing.T) {
	for _, kind := range []string{"memory", "custom", "redis"} {
		for _, leaseLost := range []bool{false, true} {
			for _, en := range enders {
				name := kind + "/" + en.name
				if leaseLost {
					name += "/lease_lost"
				}
				t.Run(name, func(t *testing.T) {
					e := newEndRace(t, kind, leaseLost)
					e.clk.Advance(2 * time.Hour) // the access token has expired
					g := newGate()
					e.holdTokenResponses(g)
					e.race(g, func() { e.apps[0].status(e.br, "GET", "/api/me") }, func() { en.end(e) })
					e.checkEnded()
					if n := e.op.RefreshGrants(); n != 1 {
						t.Fatalf("%d refresh grants, want 1", n)
					}
					// A logout waits for the refresh and revokes its token;
					// a refresh that finds its session ended revokes its own.
					if (en.name == "logout" || leaseLost) && !e.newTokenRevoked() {
						t.Fatal("the refresh token issued during the race was not revoked")
					}
				})
			}
		}
	}
}

// A logout while an activity write (touch) is held in a slow store: the
// touch does not bring the session back. No provider is involved.
func TestEndedStaysEndedDuringTouch(t *testing.T) {
	for _, leaseLost := range []bool{false, true} {
		t.Run(map[bool]string{false: "lock", true: "lease_lost"}[leaseLost], func(t *testing.T) {
			e := newEndRace(t, "custom", leaseLost)
			e.clk.Advance(2 * e.apps[0].bff.cfg.TouchInterval) // a request now records activity
			g := newGate()
			e.store.setHook(func(ctx context.Context, op, key string) error {
				if op == "commit" && key == recordName(e.id) {
					return g.pass(ctx)
				}
				return nil
			})
			e.race(g, func() { e.apps[0].status(e.br, "GET", "/api/me") }, func() { enders[0].end(e) })
			e.store.setHook(nil)
			e.checkEnded()
			if n := e.op.RefreshGrants(); n != 0 {
				t.Fatalf("%d refresh grants; the test wants a touch only", n)
			}
		})
	}
}

// The circuit breaker counts the store's failures only: a flood of
// requests whose own context was cancelled, with random cookies, against a
// store that honours contexts, leaves every valid session answering 200.
func TestBreakerIgnoresCallerCancellation(t *testing.T) {
	store := newSpyStore(t)
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Store = store })
	var ids []string
	for range 3 {
		_, id := a.signInID(t)
		ids = append(ids, id)
	}
	guard := a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 1000 {
		req := cookieRequest(a, rand.Text()).WithContext(ctx)
		guard.ServeHTTP(httptest.NewRecorder(), req)
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, cookieRequest(a, ids[i%len(ids)]))
		if rec.Code != http.StatusOK {
			t.Fatalf("after %d cancelled requests a valid session got %d, want 200", i+1, rec.Code)
		}
	}
}

// The breaker opens only after breakerThreshold consecutive store
// failures; while open it answers 503 without calling the store; one
// success after it closes resets the count.
func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	store := newSpyStore(t)
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Store = store })
	_, id := a.signInID(t)
	guard := a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	get := func() int {
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, cookieRequest(a, id))
		return rec.Code
	}
	fail := func(on bool) {
		store.setHook(nil)
		if on {
			store.setHook(func(context.Context, string, string) error { return errors.New("store down") })
		}
	}
	finds := func() int { c, _ := store.work(); return c["find s"] }

	fail(true)
	for i := range breakerThreshold - 1 {
		if code := get(); code != http.StatusServiceUnavailable {
			t.Fatalf("failure %d: %d, want 503", i+1, code)
		}
	}
	fail(false)
	if code := get(); code != 200 {
		t.Fatalf("after %d failures and a healthy store: %d, want 200 (the breaker must not be open)", breakerThreshold-1, code)
	}
	fail(true)
	for range breakerThreshold {
		get()
	}
	fail(false)
	before := finds()
	if code := get(); code != http.StatusServiceUnavailable || finds() != before {
		t.Fatalf("after %d consecutive failures: %d with %d store calls, want 503 without a store call", breakerThreshold, code, finds()-before)
	}
	testsupport.WaitUntil(t, 5*time.Second, "the breaker to close", func() bool { return a.bff.store.breaker.allow() == nil })
	if code := get(); code != 200 {
		t.Fatalf("after the breaker closed: %d, want 200", code)
	}
}

// Signing in beyond MaxSessionsPerUser ends the user's oldest sessions.
func TestSessionLimitEndsOldest(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.MaxSessionsPerUser = 3 })
	var browsers []*browser
	for range 5 {
		br := a.signIn(t)
		browsers = append(browsers, br)
	}
	for i, br := range browsers {
		want := map[bool]int{true: 401, false: 200}[i < 2]
		if code, _ := a.status(br, "GET", "/api/me"); code != want {
			t.Errorf("session %d of 5 with a limit of 3: %d, want %d", i+1, code, want)
		}
	}
	list, err := a.bff.Sessions(context.Background(), oidctest.DefaultUser.Subject)
	if err != nil || len(list) != 3 {
		t.Fatalf("Sessions = %d, %v; want 3", len(list), err)
	}
}

// storeWork measures what one operation costs a store: the commands it
// sent and the bytes it wrote (names included).
type storeWork struct {
	commands map[string]int
	written  int
}

// A user's 10,000th sign-in costs the store no more than the first one
// that reached the limit: one sign-in is O(1) in the user's sessions, and
// the number of live sessions respects the bound. Sessions are created
// through the store, as the callback does, without the provider's part.
func TestSignInCostFlat(t *testing.T) {
	const total, limit = 10000, 100
	measure := map[string]func(t *testing.T) (*app, func(f func()) storeWork){
		"redis": func(t *testing.T) (*app, func(func()) storeWork) {
			rs := redistest.Start(t)
			a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, func(o *Options) { o.MaxSessionsPerUser = limit })[0]
			return a, func(f func()) storeWork {
				rs.ResetStats()
				f()
				_, commands := dataCommands(rs.CommandStats()) // without the bus's pings
				return storeWork{commands: commands}
			}
		},
		"custom": func(t *testing.T) (*app, func(func()) storeWork) {
			store := newSpyStore(t)
			a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Store, o.MaxSessionsPerUser = store, limit })
			return a, func(f func()) storeWork {
				c0, w0 := store.work()
				f()
				c1, w1 := store.work()
				for k, v := range c0 {
					c1[k] -= v
				}
				return storeWork{commands: c1, written: w1 - w0}
			}
		},
	}
	for name, setup := range measure {
		t.Run(name, func(t *testing.T) {
			a, work := setup(t)
			ctx := context.Background()
			var first, atLimit, last storeWork
			for i := 1; i <= total; i++ {
				n := a.bff.cfg.Now().Add(time.Duration(i) * time.Millisecond).UnixNano()
				s := newSession(recordName(rand.Text()), mintRecord(n))
				w := work(func() {
					if err := a.bff.store.create(ctx, s, ""); err != nil {
						t.Fatalf("sign-in %d: %v", i, err)
					}
				})
				switch i {
				case 1:
					first = w
				case limit + 1:
					atLimit = w
				case total:
					last = w
				}
			}
			t.Logf("store work of sign-in 1: %v; %d (the first beyond the limit): %v; %d: %v", first, limit+1, atLimit, total, last)
			if !maps.Equal(atLimit.commands, last.commands) || atLimit.written != last.written {
				t.Errorf("sign-in %d cost %v, more than sign-in %d's %v", total, last, limit+1, atLimit)
			}
			// What the client sends does not change at all: the eviction
			// happens inside the same calls.
			for _, c := range []string{"evalsha", "set", "commit s", "commit sub", "commit sid"} {
				if first.commands[c] != last.commands[c] {
					t.Errorf("%q: %d for sign-in 1, %d for sign-in %d", c, first.commands[c], last.commands[c], total)
				}
			}
			list, err := a.bff.Sessions(ctx, oidctest.DefaultUser.Subject)
			if err != nil || len(list) != limit {
				t.Fatalf("live sessions after %d sign-ins = %d, %v; want %d", total, len(list), err, limit)
			}
		})
	}
}

// mintRecord is a session record for the default user signed in at n.
func mintRecord(n int64) record.Session {
	return record.Session{
		Rev: 1, Created: n, LastSeen: n, Expires: n + int64(time.Hour),
		Subject: oidctest.DefaultUser.Subject, SID: rand.Text(), Claims: []byte(`{}`),
		AccessToken: "at-" + rand.Text(), TokenType: "Bearer", AccessIssued: n, AccessExpiry: n + int64(time.Hour),
		RefreshToken: "rt-" + rand.Text(),
	}
}

// chaosUser is one session of TestEndedStaysEndedUnderChaos and what its
// history says.
type chaosUser struct {
	*loadUser
	sid    string
	ending atomic.Bool // an end has started
	ended  atomic.Bool // an end has returned
}

// TestEndedStaysEndedUnderChaos: sessions on two instances sharing Redis,
// and random interleavings of requests (which refresh and record activity:
// the clock jumps past every access token's lifetime once a second),
// logouts, RevokeSessions and back-channel logouts, on random instances.
// Afterwards every ended session answers 401 on both instances and has no
// record, every live one answers 200 with a refresh token the provider
// still honours, and no refresh token was used twice. Budget:
// BFF_CHAOS_SESSIONS (default 1,000) and BFF_CHAOS_DURATION (default 20s).
func TestEndedStaysEndedUnderChaos(t *testing.T) {
	sessions := envInt(t, "BFF_CHAOS_SESSIONS", 1000)
	duration := 20 * time.Second
	if s := os.Getenv("BFF_CHAOS_DURATION"); s != "" {
		var err error
		if duration, err = time.ParseDuration(s); err != nil {
			t.Fatalf("BFF_CHAOS_DURATION: %v", err)
		}
	}
	clock := &offsetClock{}
	users := make([]oidctest.User, sessions)
	for i := range users {
		users[i] = oidctest.User{Subject: fmt.Sprintf("chaos-%05d", i), Username: fmt.Sprintf("c%05d", i), Password: "x"}
	}
	// Each jump of the clock expires every access token, but neither an ID
	// token nor a logout token issued just before it (they live an hour and
	// 2 minutes; real clocks do not jump).
	const tokenTTL = 90 * time.Second
	op := testOP(t, oidctest.Config{Users: users, Now: clock.Now, AccessTokenTTL: tokenTTL})
	rs := redistest.Start(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if f := os.Getenv("BFF_CHAOS_LOG"); f != "" {
		lf, _ := os.Create(f)
		quiet = slog.New(slog.NewTextHandler(lf, nil))
	}
	apps := redisApps(t, op, rs, 2, func(o *Options) {
		// Sessions end only when told to, whatever the clock does.
		o.Now, o.Logger, o.IdleTimeout, o.MaxLifetime = clock.Now, quiet, 1000*time.Hour, 2000*time.Hour
	})
	cu := chaosSignIn(t, apps[0], users)
	var requests, ends, unavailable atomic.Int64
	var failures sync.Map // what went wrong -> count, reported once
	fail := func(what string) { failures.LoadOrStore(what, true) }
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	// A logout token lives 2 minutes: a jump between its minting and its
	// check would make it stale, which no real clock does.
	var jump sync.RWMutex
	wg.Go(func() {
		for time.Now().Before(stop) {
			time.Sleep(time.Second)
			jump.Lock()
			clock.Advance(tokenTTL + time.Second)
			jump.Unlock()
		}
	})
	for w := range 16 {
		wg.Go(func() {
			rnd := mrand.New(mrand.NewPCG(uint64(w), 1))
			for time.Now().Before(stop) {
				u, a := cu[rnd.IntN(len(cu))], apps[rnd.IntN(2)]
				// Half the sessions end, spread over the run.
				due := float64(len(cu)) / 2 * (1 - time.Until(stop).Seconds()/duration.Seconds())
				if float64(ends.Load()) < due && rnd.IntN(10) == 0 && u.ending.CompareAndSwap(false, true) {
					jump.RLock()
					chaosEnd(t, op, a, u, rnd.IntN(3), fail)
					jump.RUnlock()
					ends.Add(1)
					continue
				}
				requests.Add(1)
				switch code := chaosGet(a, u.id); {
				case code == 503:
					unavailable.Add(1)
				case code == 401 && !u.ending.Load():
					fail(u.sub + ": a live session answered 401")
				case code == 200 && u.ended.Load():
					// Allowed for at most the invalidation delay; the final
					// check below is exact.
				case code != 200 && code != 401:
					fail(fmt.Sprintf("%s: /api/me = %d", u.sub, code))
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d sessions, %v: %d requests (%d answered 503), %d ends, %d refresh grants",
		len(cu), duration, requests.Load(), unavailable.Load(), ends.Load(), op.RefreshGrants())
	chaosCheck(t, op, apps, cu, fail)
	failures.Range(func(k, _ any) bool { t.Error(k); return true })
	if n := op.RefreshReuses(); n != 0 {
		t.Errorf("%d refresh tokens were used twice", n)
	}
}

// chaosSignIn signs every user in through the real flow, 32 at a time.
func chaosSignIn(t *testing.T, a *app, users []oidctest.User) []*chaosUser {
	cu := make([]*chaosUser, len(users))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	t.Cleanup(tr.CloseIdleConnections)
	parallelFor(len(users), 32, func(i int) {
		jar, _ := cookiejar.New(nil)
		u := &chaosUser{loadUser: &loadUser{sub: users[i].Subject, hint: users[i].Username, jar: jar,
			client: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}}
		if err := loadLogin(a, u.loadUser); err != nil {
			t.Errorf("sign-in of %s: %v", u.sub, err)
			return
		}
		s, err := a.bff.store.read(context.Background(), recordName(u.id))
		if err != nil {
			t.Errorf("%s: %v", u.sub, err)
			return
		}
		u.sid, cu[i] = s.rec.SID, u
	})
	if t.Failed() {
		t.FailNow()
	}
	return cu
}

// chaosGet sends GET /api/me with the session cookie id to a.
func chaosGet(a *app, id string) int {
	req, _ := http.NewRequest("GET", a.URL+"/api/me", nil)
	req.Header.Set("Cookie", a.bff.cfg.CookieName+"="+id)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// chaosEnd ends u's session on a in one of three ways.
func chaosEnd(t *testing.T, op *oidctest.Provider, a *app, u *chaosUser, how int, fail func(string)) {
	switch how {
	case 0:
		req, _ := http.NewRequest("POST", a.URL+"/auth/logout", nil)
		req.Header.Set("Cookie", a.bff.cfg.CookieName+"="+u.id)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			fail(fmt.Sprintf("%s: logout failed (%v)", u.sub, err))
			return
		}
		resp.Body.Close()
	case 1:
		if _, err := a.bff.RevokeSessions(context.Background(), u.sub); err != nil {
			fail(fmt.Sprintf("%s: RevokeSessions: %v", u.sub, err))
			return
		}
	default:
		if code, _, body := a.backchannel(op.LogoutToken(u.sub, u.sid, nil)); code != 200 {
			fail(fmt.Sprintf("%s: back-channel logout = %d %s", u.sub, code, body))
			return
		}
	}
	u.ended.Store(true)
}

// chaosCheck: every session is in the state its history says, on both
// instances and in the store.
func chaosCheck(t *testing.T, op *oidctest.Provider, apps []*app, cu []*chaosUser, fail func(string)) {
	// Ends reach every instance's cache within 100 ms (the bus's bound).
	settled := time.Now().Add(100 * time.Millisecond)
	for _, u := range cu {
		want := map[bool]int{false: 200, true: 401}[u.ended.Load()]
		for i, a := range apps {
			code := chaosGet(a, u.id)
			for code == 200 && want == 401 && time.Now().Before(settled) {
				code = chaosGet(a, u.id)
			}
			if code != want {
				fail(fmt.Sprintf("%s (ended %v) on instance %d: /api/me = %d, want %d", u.sub, u.ended.Load(), i, code, want))
			}
		}
		s, err := apps[0].bff.store.read(context.Background(), recordName(u.id))
		switch {
		case u.ended.Load() && err != errNotFound:
			fail(fmt.Sprintf("%s: ended, but its record is there (%v)", u.sub, err))
		case !u.ended.Load() && err != nil:
			fail(fmt.Sprintf("%s: session record lost: %v", u.sub, err))
		case !u.ended.Load() && !op.RefreshTokenValid(s.rec.RefreshToken):
			fail(u.sub + ": the stored refresh token is not valid at the provider")
		}
	}
}
