package bff

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// sse is an open event stream of GET /auth/events.
type sse struct {
	*testsupport.EventStream
	t testing.TB
}

// openEvents opens GET /auth/events on a with the browser's cookies, as a
// same-origin EventSource, and checks the stream's headers.
func openEvents(t testing.TB, a *app, br *browser, headers ...string) *sse {
	t.Helper()
	s := &sse{br.Stream(a.URL+"/auth/events", headers...), t}
	for _, h := range []string{"Cache-Control: no-store", "X-Accel-Buffering: no"} {
		k, v, _ := strings.Cut(h, ": ")
		if got := s.Response.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	return s
}

// eventsRequest sends the request of a stream that must be refused.
func eventsRequest(t testing.TB, a *app, br *browser, headers ...string) (*http.Response, func() error) {
	resp := br.do("GET", a.URL+"/auth/events", nil, append(slices.Clone(testsupport.EventSource), headers...)...)
	return resp, resp.Body.Close
}

// expect reads the next event, which must be name, and returns its data.
func (s *sse) expect(name string) map[string]string {
	s.t.Helper()
	ev := s.Next()
	if ev.Name != name {
		s.t.Fatalf("event %q %s, want %q", ev.Name, ev.Data, name)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		s.t.Fatalf("event %s: data %q is not a JSON object of strings", name, ev.Data)
	}
	return m
}

// expectEnded reads "ended" with reason, then the end of the stream.
func (s *sse) expectEnded(reason endReason) {
	s.t.Helper()
	if got := s.expect("ended")["reason"]; got != string(reason) {
		s.t.Errorf("ended with reason %q, want %q", got, reason)
	}
	if ev := s.Next(); ev.Name != "EOF" {
		s.t.Errorf("after ended: %q %s, want the end of the stream", ev.Name, ev.Data)
	}
}

// eventsApp is an app on the memory store with a frozen clock whose
// timers drive the streams, and a signed-in browser.
func eventsApp(t *testing.T, opt func(*Options)) (*app, *browser, *frozenClock) {
	t.Helper()
	e := newEnv(t, longTokens, onMemory(opt)).signIn() // streams hear of ends, not poll
	return e.a, e.br, e.clock
}

// awaitTimers waits until n timers of the clock are armed: the streams
// wait for them.
func awaitTimers(t testing.TB, clock *frozenClock, n int) {
	t.Helper()
	testsupport.WaitUntil(t, 10*time.Second, "the streams to arm their timers", func() bool { return clock.pending() >= n })
}

// The stream opens with the session's deadlines, and without a session
// (or for another origin, or with another method) there is none.
func TestEventsOpen(t *testing.T) {
	a, br, _ := eventsApp(t, nil)
	s := openEvents(t, a, br)
	got := s.expect("session")
	id, _ := a.sessionCookie(br)
	rec := a.bff.store
	sess, _ := a.storeSession(id)
	want := map[string]string{"expiresAt": eventTime(sess.rec.Expires), "idleExpiresAt": eventTime(sess.rec.LastSeen + int64(a.bff.cfg.IdleTimeout))}
	if got["expiresAt"] != want["expiresAt"] || got["idleExpiresAt"] != want["idleExpiresAt"] || len(got) != 2 {
		t.Errorf("session event = %v, want %v", got, want)
	}
	if exp, _ := time.Parse(time.RFC3339, got["idleExpiresAt"]); !exp.Equal(time.Unix(0, rec.deadline(&sess.rec)).Truncate(time.Millisecond)) {
		t.Errorf("idleExpiresAt %s is not the session's deadline", got["idleExpiresAt"])
	}

	guest := newBrowser(t)
	for _, tc := range []struct {
		name    string
		br      *browser
		headers []string
		status  int
	}{
		{"no session", guest, nil, 401},
		{"another site", br, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"the same site, another origin", br, []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"another origin without fetch metadata", br, []string{"Sec-Fetch-Site", "", "Origin", "http://evil.example"}, 403},
	} {
		resp, cancel := eventsRequest(t, a, tc.br, tc.headers...)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q, want %d JSON", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status)
		}
		cancel()
	}
	if code, _ := a.status(br, "POST", "/auth/events"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /auth/events = %d, want 405", code)
	}
}

// Every way a session ends reaches its open stream, at once and with its
// reason; then the stream closes. The session's end is announced, not
// found by polling: the clock does not move.
func TestEventsEndReasons(t *testing.T) {
	for _, tc := range []struct {
		reason endReason
		opt    func(*Options)
		end    func(t *testing.T, a *app, br *browser, clock *frozenClock)
	}{
		{endLogout, nil, func(t *testing.T, a *app, br *browser, _ *frozenClock) {
			a.logout(br, "Sec-Fetch-Site", "same-origin").Body.Close()
		}},
		{endBackchannel, nil, func(t *testing.T, a *app, br *browser, _ *frozenClock) {
			s := a.browserSession(br)
			a.expectBackchannel(t, a.op.LogoutToken(s.rec.Subject, s.rec.SID, nil), 200, "")
		}},
		{endRevoked, nil, func(t *testing.T, a *app, br *browser, _ *frozenClock) {
			if n, err := a.bff.RevokeSessions(context.Background(), oidctest.DefaultUser.Subject); n != 1 || err != nil {
				t.Fatalf("RevokeSessions = %d, %v", n, err)
			}
		}},
		{endRefreshFailed, nil, func(t *testing.T, a *app, br *browser, _ *frozenClock) {
			a.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenError = "invalid_grant" })
			if _, err := a.bff.refreshRejected(context.Background(), a.browserSession(br)); !signedOut(err) {
				t.Fatalf("refresh with invalid_grant = %v, want 401", err)
			}
		}},
		{endLimit, func(o *Options) { o.MaxSessionsPerUser = 1 }, func(t *testing.T, a *app, br *browser, clock *frozenClock) {
			clock.Advance(time.Millisecond) // a later sign-in, on the frozen clock
			a.login(newBrowser(t))
		}},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			a, br, clock := eventsApp(t, tc.opt)
			s := openEvents(t, a, br)
			s.expect("session")
			tc.end(t, a, br, clock)
			s.expectEnded(tc.reason)
		})
	}
}

// A new sign-in in the same browser replaces the session: that is no
// end for the user. The stream closes without "ended", asking for a quick
// reconnection, which finds the new session.
func TestEventsSessionReplaced(t *testing.T) {
	a, br, _ := eventsApp(t, nil)
	s := openEvents(t, a, br)
	s.expect("session")
	a.login(br)
	if ev := s.Next(); ev.Name != "retry" || ev.Data != "1000" {
		t.Errorf("replaced: %q %q, want retry: 1000", ev.Name, ev.Data)
	}
	if ev := s.Next(); ev.Name != "EOF" {
		t.Errorf("replaced: %q %s, want the end of the stream", ev.Name, ev.Data)
	}
	again := openEvents(t, a, br)
	again.expect("session")
}

// The stream never keeps its session alive, and costs no store read per
// heartbeat: idle, it sends heartbeats, "expiring" ExpiryWarning before the
// idle deadline, and at the deadline ends the session ("expired"), which
// the store then no longer holds.
func TestEventsIdleExpiry(t *testing.T) {
	a, br, clock := eventsApp(t, func(o *Options) {
		o.IdleTimeout, o.TouchInterval, o.ExpiryWarning = 4*time.Minute, time.Minute, 30*time.Second
		o.DisableSessionCache = true // every read of the session reaches the store, and is counted
	})
	cs := countFinds(a)
	id, _ := a.sessionCookie(br)
	idle := mustSession(t, a, id).rec.LastSeen + int64(4*time.Minute)
	clock.Advance(61 * time.Second) // past TouchInterval: a request now would record activity
	s := openEvents(t, a, br)
	if got := s.expect("session")["idleExpiresAt"]; got != eventTime(idle) {
		t.Errorf("idleExpiresAt = %s, want %s: opening the stream touched the session", got, eventTime(idle))
	}
	reads := cs.finds.Load()
	for range 5 { // 75 s: five heartbeats, no warning yet
		awaitTimers(t, clock, 2)
		clock.Advance(eventsHeartbeat)
		if ev := s.NextAny(); ev.Name != ":" {
			t.Fatalf("idle stream sent %q %s, want a heartbeat comment", ev.Name, ev.Data)
		}
	}
	if n := cs.finds.Load() - reads; n != 0 {
		t.Errorf("%d store reads for 5 heartbeats, want 0", n)
	}
	awaitTimers(t, clock, 2)
	clock.Advance(time.Duration(idle-int64(30*time.Second)) - time.Duration(clock.Now().UnixNano()))
	warn := s.expect("expiring")
	if warn["endsAt"] != eventTime(idle) || warn["cause"] != "idle" {
		t.Errorf("expiring = %v, want endsAt %s (the idle deadline), cause idle", warn, eventTime(idle))
	}
	if mustSession(t, a, id).rec.LastSeen+int64(4*time.Minute) != idle {
		t.Error("the stream touched its session")
	}
	awaitTimers(t, clock, 2)
	clock.Advance(time.Duration(idle - clock.Now().UnixNano()))
	s.expectEnded(endExpired)
	if _, err := a.storeSession(id); err != errNotFound {
		t.Errorf("the expired session is still in the store (%v)", err)
	}
}

// Activity (a touch) and a refresh that moves the deadlines reach the
// stream as a new "session" event; the warning is re-armed for the new
// deadline.
func TestEventsSessionChanges(t *testing.T) {
	a, br, clock := eventsApp(t, func(o *Options) {
		o.IdleTimeout, o.TouchInterval, o.ExpiryWarning = 10*time.Minute, time.Minute, time.Minute
	})
	s := openEvents(t, a, br)
	first := s.expect("session")
	awaitTimers(t, clock, 2)
	clock.Advance(2 * time.Minute)
	a.expect(t, br, "/api/me", 200, "") // touches the session
	touched := s.expect("session")
	if touched["idleExpiresAt"] <= first["idleExpiresAt"] || touched["expiresAt"] != first["expiresAt"] {
		t.Errorf("after activity: %v, before: %v; want a later idleExpiresAt", touched, first)
	}
	if _, err := a.bff.refreshRejected(context.Background(), a.browserSession(br)); err != nil {
		t.Fatal(err)
	}
	refreshed := s.expect("session")
	if refreshed["expiresAt"] <= touched["expiresAt"] {
		t.Errorf("after a refresh (refresh_expires_in moved on): %v, before %v", refreshed, touched)
	}
}

// Streams are bounded per session and per instance (429, Retry-After);
// a closed stream gives its place back.
func TestEventsBounds(t *testing.T) {
	a, br, _ := eventsApp(t, func(o *Options) { o.MaxEventStreams, o.MaxEventStreamsPerSession = 3, 2 })
	s1 := openEvents(t, a, br)
	openEvents(t, a, br)
	refused := func(br *browser, what string) {
		t.Helper()
		resp, cancel := eventsRequest(t, a, br)
		defer cancel()
		if code, _, _ := jsonError(t, resp); resp.StatusCode != 429 || code != "too_many_streams" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %q (Retry-After %q), want 429 too_many_streams", what, resp.StatusCode, code, resp.Header.Get("Retry-After"))
		}
	}
	refused(br, "a third stream of one session")
	other := a.signIn(t)
	openEvents(t, a, other)
	refused(other, "a fourth stream on the instance")
	s1.Close()
	testsupport.WaitUntil(t, 10*time.Second, "the closed stream to leave", func() bool { return a.bff.store.watch.len() == 2 })
	openEvents(t, a, other).expect("session")
}

// CloseEventStreams ends the open streams (no event: the browser
// reconnects) and refuses new ones with 503; Close waits for them.
func TestEventsClose(t *testing.T) {
	a, br, _ := eventsApp(t, nil)
	s := openEvents(t, a, br)
	s.expect("session")
	a.bff.CloseEventStreams()
	if ev := s.Next(); ev.Name != "EOF" {
		t.Errorf("after CloseEventStreams: %q, want the end of the stream", ev.Name)
	}
	resp, cancel := eventsRequest(t, a, br)
	defer cancel()
	if resp.StatusCode != 503 {
		t.Errorf("a stream after CloseEventStreams = %d, want 503", resp.StatusCode)
	}
	a.bff.Close()
	if n := a.bff.store.watch.len(); n != 0 {
		t.Errorf("%d streams registered after Close", n)
	}
}

// With Redis, an end on one instance reaches the streams of every other
// instance with its reason (the invalidation channel), with and without
// the session cache; the per-user limit's evictions too (announced by the
// store's script).
func TestEventsRedisAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	for _, noCache := range []bool{false, true} {
		for _, tc := range []struct {
			reason endReason
			end    func(t *testing.T, a *app, br *browser)
		}{
			{endLogout, func(t *testing.T, a *app, br *browser) {
				a.logout(br, "Sec-Fetch-Site", "same-origin").Body.Close()
			}},
			{endBackchannel, func(t *testing.T, a *app, br *browser) {
				s := a.browserSession(br)
				a.expectBackchannel(t, a.op.LogoutToken(s.rec.Subject, s.rec.SID, nil), 200, "")
			}},
			{endLimit, func(t *testing.T, a *app, br *browser) { a.login(newBrowser(t)) }},
		} {
			name := string(tc.reason)
			if noCache {
				name += "/DisableSessionCache"
			}
			t.Run(name, func(t *testing.T) {
				op := testOP(t, oidctest.Config{})
				apps := redisApps(t, op, rs, 2, func(o *Options) { o.DisableSessionCache, o.MaxSessionsPerUser = noCache, 1 })
				br := newBrowser(t)
				apps[0].login(br)
				waitHealthy(t, apps[1])
				s := openEvents(t, apps[1], br)
				s.expect("session")
				tc.end(t, apps[0], br)
				s.expectEnded(tc.reason)
			})
		}
	}
}

// With Redis, a stream on an instance whose invalidation bus is down (its
// messages lost) still learns of an end: it re-reads its session once per
// busPollInterval while the bus is unhealthy. The end here is announced to
// nobody (the record deleted in Redis), so only the poll can find it.
func TestEventsRedisBusDown(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	clock := newFrozenClock()
	apps := redisApps(t, op, rs, 1, func(o *Options) { o.Now, hooksOf(o).newTimer = clock.Now, clock.Timer })
	a := apps[0]
	br := a.signIn(t)
	waitHealthy(t, a)
	s := openEvents(t, a, br)
	s.expect("session")
	a.bff.store.bus.Close() // unhealthy for good: nothing more is heard
	id, _ := a.sessionCookie(br)
	if _, err := rs.Do("DEL", redisKey(id)); err != nil {
		t.Fatal(err)
	}
	awaitTimers(t, clock, 3) // the poll's, the stream's heartbeat and deadline
	clock.Advance(busPollInterval)
	s.expectEnded(endRevoked)
}

// The poll's policy, on a health that the test sets: no poll while
// healthy, one per tick while unhealthy, and one on the first tick after
// the bus is healthy again (an end announced while it was down).
func TestPollWatchersPolicy(t *testing.T) {
	clock := newFrozenClock()
	st := &sessionStore{watch: newWatchers(10, 10)}
	w, _ := st.watch.add("s:x")
	healthy := true
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); st.pollWatchers(stop, clock.Timer, func() bool { return healthy }) }()
	defer func() { close(stop); <-done }()
	woken := func() bool {
		select {
		case <-w.wake:
			return true
		default:
			return false
		}
	}
	for i, step := range []struct {
		healthy, poll bool
	}{{true, false}, {false, true}, {false, true}, {true, true}, {true, false}} {
		awaitTimers(t, clock, 1)
		healthy = step.healthy // the poller is waiting on its timer
		clock.Advance(busPollInterval)
		awaitTimers(t, clock, 1) // the tick was handled
		if got := woken(); got != step.poll {
			t.Errorf("tick %d (healthy %v): woken %v, want %v", i, step.healthy, got, step.poll)
		}
	}
}

// Messages of the invalidation channel: a change is the key; an end is the
// key with its reason, then the key alone (what older versions read). An
// unknown reason is a change.
func TestBusMessages(t *testing.T) {
	if got := busMessages("s:k", endChanged); len(got) != 1 || got[0] != "s:k" {
		t.Errorf("change = %q", got)
	}
	end := busMessages("s:k", endLogout)
	if len(end) != 2 || end[1] != "s:k" {
		t.Fatalf("end = %q", end)
	}
	for _, tc := range []struct {
		msg    string
		key    string
		reason endReason
	}{
		{end[0], "s:k", endLogout}, {"s:k", "s:k", endChanged}, {"s:k\x00bogus", "s:k", endChanged},
		{"s:k\x00", "s:k", endChanged}, {"s:k\x00expired", "s:k", endExpired},
	} {
		if key, reason := parseBusMessage(tc.msg); key != tc.key || reason != tc.reason {
			t.Errorf("parse %q = %q %q, want %q %q", tc.msg, key, reason, tc.key, tc.reason)
		}
	}
}

// A session that ends between the stream's first read and its
// registration is not missed: the stream reads it again once registered
// (here the end is forced into that moment by holding the first read).
func TestEventsEndWhileOpening(t *testing.T) {
	store := &heldFindStore{spyStore: newSpyStore(t), g: newGate()}
	clock := newFrozenClock()
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now, AccessTokenTTL: 48 * time.Hour}), func(o *Options) { o.Store, o.Now, hooksOf(o).newTimer = store, clock.Now, clock.Timer })
	br := a.signIn(t)
	g := store.g
	store.armed.Store(true)
	status := make(chan int, 1)
	go func() {
		resp, cancel := eventsRequest(t, a, br)
		status <- resp.StatusCode
		cancel()
	}()
	g.await(t, "the stream's first read of its session")
	a.logout(br, "Sec-Fetch-Site", "same-origin").Body.Close()
	g.release()
	if code := <-status; code != http.StatusUnauthorized {
		t.Errorf("a stream of a session that ended while it opened = %d, want 401", code)
	}
}

// heldFindStore holds the first read of a session record, once armed,
// after the read: its caller has the record while the test changes it.
type heldFindStore struct {
	*spyStore
	g     *gate
	armed atomic.Bool
}

func (s *heldFindStore) FindCtx(ctx context.Context, key string) ([]byte, bool, error) {
	v, found, err := s.spyStore.FindCtx(ctx, key)
	if strings.HasPrefix(key, "s:") && s.armed.CompareAndSwap(true, false) {
		if gerr := s.g.pass(ctx); gerr != nil {
			return nil, false, gerr
		}
	}
	return v, found, err
}

// A store that fails when the stream must read it: an announced end is
// trusted (ended with its reason); a wake-up to re-read is retried once per
// busPollInterval until the store answers. An end announced for a session
// that is still there (a forged message) ends nothing.
func TestEventsStoreTrouble(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	a, spy, clock := e.a, e.store, e.clock
	down := func(on bool) {
		if !on {
			spy.setHook(nil)
			return
		}
		spy.setHook(func(_ context.Context, op, key string) error {
			if op == "find" && strings.HasPrefix(key, "s:") {
				return errors.New("store down")
			}
			return nil
		})
	}
	open := func() (*browser, *sse, string) {
		br := a.signIn(t)
		s := openEvents(t, a, br)
		id, _ := a.sessionCookie(br)
		return br, s, recordName(id)
	}

	br, s, key := open()
	first := s.expect("session")
	a.bff.store.watch.notify(key, endLogout) // forged: the session is there
	clock.Advance(61 * time.Second)
	a.expect(t, br, "/api/me", 200, "") // records activity: a real change
	if got := s.expect("session"); got["idleExpiresAt"] == first["idleExpiresAt"] {
		t.Errorf("after the forged end and a change: %v", got)
	}
	down(true)
	a.bff.store.watch.notify(key, endBackchannel)
	s.expectEnded(endBackchannel)
	down(false)

	_, s, key = open()
	s.expect("session")
	down(true)
	a.bff.store.watch.notify(key, endChanged)
	testsupport.WaitUntil(t, 10*time.Second, "the stream to arm its retry", func() bool { return clock.dueWithin(busPollInterval) == 1 })
	spy.Memory.Delete(key) // ended, announced to nobody
	down(false)
	clock.Advance(busPollInterval)
	s.expectEnded(endRevoked)
}

// With a custom Store (no channel between instances), a stream re-reads
// its session every storePollInterval: an end it was not told of (here the
// record deleted in the store) ends the stream.
func TestEventsCustomStorePolls(t *testing.T) {
	e := newEnv(t, longTokens, nil).signIn()
	a, br, spy, clock := e.a, e.br, e.store, e.clock
	s := openEvents(t, a, br)
	s.expect("session")
	id, _ := a.sessionCookie(br)
	spy.Memory.Delete(recordName(id))
	awaitTimers(t, clock, 3) // the store's poll, the stream's heartbeat and deadline
	clock.Advance(storePollInterval)
	s.expectEnded(endRevoked)
}

// When the session's lifetime ends before its idle timeout, "expiring"
// says so.
func TestEventsLifetimeWarning(t *testing.T) {
	a, br, clock := eventsApp(t, func(o *Options) { o.MaxLifetime, o.ExpiryWarning = 10*time.Minute, time.Minute })
	s := openEvents(t, a, br)
	got := s.expect("session")
	awaitTimers(t, clock, 2)
	clock.Advance(9 * time.Minute)
	if warn := s.expect("expiring"); warn["cause"] != "lifetime" || warn["endsAt"] != got["expiresAt"] {
		t.Errorf("expiring = %v, want the lifetime's end %s", warn, got["expiresAt"])
	}
}

// The server's ReadTimeout and WriteTimeout, which bound a request and its
// answer, do not end a stream that outlives them: each event has a write
// deadline of its own.
func TestEventsOutliveServerTimeouts(t *testing.T) {
	a, br, _ := eventsApp(t, nil)
	srv := httptest.NewUnstartedServer(a.srv.Config.Handler)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 50*time.Millisecond, 50*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	onSrv := &app{t: t, bff: a.bff, srv: srv, op: a.op, URL: srv.URL}
	s := openEvents(t, onSrv, br)
	s.expect("session")
	time.Sleep(4 * srv.Config.WriteTimeout) // past both deadlines (a wait, not an assertion)
	a.logout(br, "Sec-Fetch-Site", "same-origin").Body.Close()
	s.expectEnded(endLogout)
}
