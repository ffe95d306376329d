package bff

import (
	"io"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
	"github.com/gomodule/redigo/redis"
)

// Tests of Redis failover (issue 17): a primary, a replica and three
// sentinels started by the test; the primary killed under load.

// sentinelApps starts n instances on g, each with its own pool, as n
// processes behind one balancer would be. opt may change the options.
func sentinelApps(t *testing.T, op *oidctest.Provider, g *redistest.Group, n int, opt func(*Options)) []*app {
	t.Helper()
	return sharedApps(t, op, n, func() *redis.Pool {
		pool, err := RedisConfig{Sentinels: g.SentinelAddrs(), MasterName: g.Name}.NewPool()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pool.Close() })
		return pool
	}, opt)
}

// signInMany signs n browsers in, alternating instances, and returns their
// session IDs.
func signInMany(t *testing.T, apps []*app, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		br := newBrowser(t)
		apps[i%len(apps)].login(br)
		ids[i], _ = apps[0].sessionCookie(br)
	}
	return ids
}

// logout signs the session id out on a and returns the status.
func logout(t *testing.T, a *app, id string) int {
	resp := browserWithCookie(t, a, id).do("POST", a.URL+"/auth/logout", nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// statusOf is GET /api/me with session id on a.
func statusOf(t *testing.T, a *app, br *browser) int {
	code, _ := a.status(br, "GET", "/api/me")
	return code
}

// failoverLog records what the load saw, by session kind.
type failoverLog struct {
	mu        sync.Mutex
	first503  time.Time // the first 503 after the kill
	last503   time.Time // the last 503 of a live session
	counts    map[int]int
	unexpectd []string
}

func (l *failoverLog) add(kind string, code int, killed time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.counts[code]++
	switch {
	case code == http.StatusOK:
	case code == http.StatusServiceUnavailable:
		if !killed.IsZero() && l.first503.IsZero() {
			l.first503 = now
		}
		l.last503 = now
	default:
		l.unexpectd = append(l.unexpectd, kind+": "+http.StatusText(code))
	}
}

// The primary dies under load: while no primary is known the app answers
// 503, never 401; then the replicated sessions work on the new primary on
// every instance, the invalidation bus is back (a sign-out is seen
// everywhere within 100 ms), and no ended session is back.
func TestRedisSentinelFailover(t *testing.T) {
	g := redistest.StartGroup(t)
	op := testOP(t, oidctest.Config{})
	// Every sign-in here is the same user's, and the load below signs in
	// hundreds of times: a per-user limit would end the live sessions.
	apps := sentinelApps(t, op, g, 2, func(o *Options) { o.MaxSessionsPerUser = 1 << 20 })
	a, b := apps[0], apps[1]

	live := signInMany(t, apps, 24)
	endedBefore := signInMany(t, apps, 6)
	endedDuring := signInMany(t, apps, 12)
	for i, id := range endedBefore {
		if code := logout(t, apps[i%2], id); code != http.StatusSeeOther {
			t.Fatalf("logout before the failover = %d", code)
		}
	}
	// Every sign-in and end is on the replica: these sessions must survive
	// the failover exactly as they are.
	g.Primary.Replicated(1, 5*time.Second)
	waitHealthy(t, a)
	waitHealthy(t, b)

	var killedAt atomic.Pointer[time.Time]
	killed := func() time.Time {
		if p := killedAt.Load(); p != nil {
			return *p
		}
		return time.Time{}
	}
	flog := &failoverLog{counts: map[int]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				in := apps[i%2]
				flog.add("live session", statusOf(t, in, browserWithCookie(t, in, live[i%len(live)])), killed())
				time.Sleep(time.Millisecond)
			}
		})
	}
	// Sign-outs go on during the failover: each answers 303 (ended, for
	// good) or 503 (not known to be ended: the user retries).
	endResult := make([]int, len(endedDuring))
	wg.Go(func() {
		for i, id := range endedDuring {
			endResult[i] = logout(t, apps[i%2], id)
			time.Sleep(250 * time.Millisecond)
		}
	})
	// Sign-ins go on too, without waiting for the replica: the last ones
	// before the kill may be lost (README says so); we count them.
	var signedIn []string
	signInFailed := 0
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			br := newBrowser(t)
			if resp, body := br.follow(apps[i%2].URL + "/auth/login?returnTo=/app"); resp.StatusCode == 200 && body == "app page" {
				id, _ := a.sessionCookie(br)
				signedIn = append(signedIn, id)
			} else {
				signInFailed++
				time.Sleep(10 * time.Millisecond)
			}
		}
	})

	time.Sleep(300 * time.Millisecond) // load on a healthy primary first
	now := time.Now()
	killedAt.Store(&now)
	g.Primary.Stop() // SIGKILL
	g.WaitMaster(g.Replica.Addr, 30*time.Second)
	promoted := time.Since(now)
	// Recovered: every live session answers 200 on both instances.
	testsupport.WaitUntil(t, 20*time.Second, "every live session to answer 200 on both instances", func() bool {
		for _, id := range live {
			for _, in := range apps {
				if statusOf(t, in, browserWithCookie(t, in, id)) != http.StatusOK {
					return false
				}
			}
		}
		return true
	})
	recovered := time.Since(now)
	close(stop)
	wg.Wait()

	flog.mu.Lock()
	t.Logf("responses: %v; sentinels promoted the replica %v after the kill; first 503 %v after it; last 503 %v after it; all live sessions served again %v after it",
		flog.counts, promoted.Round(time.Millisecond), flog.first503.Sub(now).Round(time.Millisecond),
		flog.last503.Sub(now).Round(time.Millisecond), recovered.Round(time.Millisecond))
	if len(flog.unexpectd) > 0 {
		t.Fatalf("unexpected answers to live sessions during the failover (want only 200 and 503): %q", flog.unexpectd)
	}
	if flog.first503.IsZero() {
		t.Fatal("no 503 while no primary was known: requests were served from somewhere")
	}
	flog.mu.Unlock()

	// No ended session is back: those ended before, and those whose
	// sign-out answered 303 during the failover, are 401 everywhere.
	var ended []string
	ended = append(ended, endedBefore...)
	confirmed := 0
	for i, code := range endResult {
		switch code {
		case http.StatusSeeOther:
			ended = append(ended, endedDuring[i])
			confirmed++
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("logout during the failover = %d, want 303 or 503", code)
		}
	}
	t.Logf("sign-outs during the failover: %d of %d confirmed (303), the others 503", confirmed, len(endResult))
	for _, id := range ended {
		for _, in := range apps {
			if code := statusOf(t, in, browserWithCookie(t, in, id)); code != http.StatusUnauthorized {
				t.Fatalf("an ended session answers %d on %s after the failover, want 401", code, in.URL)
			}
		}
	}

	lost := 0
	for _, id := range signedIn {
		switch code := statusOf(t, a, browserWithCookie(t, a, id)); code {
		case http.StatusOK:
		case http.StatusUnauthorized:
			lost++
		default:
			t.Errorf("a session signed in under load answers %d after the failover", code)
		}
	}
	t.Logf("sign-ins under load: %d completed, %d lost in the failover (not yet on the replica), %d refused (503) while no primary was known",
		len(signedIn), lost, signInFailed)

	// The bus is subscribed to the new primary: a sign-out on A is seen
	// on B within 100 ms, B's cache holding the session.
	waitHealthy(t, a)
	waitHealthy(t, b)
	br := browserWithCookie(t, b, live[0])
	for range 2 {
		if code := statusOf(t, b, br); code != 200 {
			t.Fatalf("/api/me on B = %d", code)
		}
	}
	if code := logout(t, a, live[0]); code != http.StatusSeeOther {
		t.Fatalf("logout on A after the failover = %d", code)
	}
	d := expect401Within(t, b, br, "/api/me", 100*time.Millisecond)
	t.Logf("after the failover, a sign-out on A was seen on B after %v", d)
	// New sign-ins land on the new primary.
	if ids := signInMany(t, apps, 1); !exists(t, g.Replica, ids[0]) {
		t.Fatal("a new session is not on the new primary")
	}
}

func exists(t *testing.T, rs *redistest.Server, id string) bool {
	n, err := rs.Do("EXISTS", redisKey(id))
	if err != nil {
		t.Fatal(err)
	}
	return n.(int64) == 1
}

// A sign-out that no replica confirms answers 503 and keeps the cookie (the
// user retries), yet is done on the primary and announced: every instance
// stops serving the session. A retry says "signed out" only once a replica
// has the end; so does a back-channel logout, which the provider retries.
func TestRedisEndNotReplicatedAnswers503(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	op := testOP(t, oidctest.Config{})
	apps := redisApps(t, op, primary, 2, nil)
	a, b := apps[0], apps[1]
	br, other := newBrowser(t), newBrowser(t)
	a.login(br)
	a.login(other)
	waitHealthy(t, b)
	for range 2 { // cached on B
		if code := statusOf(t, b, br); code != 200 {
			t.Fatalf("/api/me on B = %d", code)
		}
	}
	id, _ := a.sessionCookie(br)
	otherID, _ := a.sessionCookie(other)
	rec := mustSession(t, a, otherID)

	replica.Freeze()
	for try := range 2 {
		resp := br.send("POST", a.URL+"/auth/logout")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("logout %d with the replica stalled = %d (Retry-After %q), want 503", try, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if _, ok := a.sessionCookie(br); !ok {
			t.Fatalf("logout %d cleared the cookie although the end is not confirmed", try)
		}
		if try == 0 { // ended on the primary, and announced
			expect401Within(t, b, browserWithCookie(t, b, id), "/api/me", 100*time.Millisecond)
		}
	}
	token := op.LogoutToken("", rec.rec.SID, nil)
	for try := range 2 {
		if code, _, body := a.backchannel(token); code != http.StatusServiceUnavailable {
			t.Fatalf("back-channel logout %d with the replica stalled = %d %s, want 503", try, code, body)
		}
	}
	replica.Thaw()

	resp := br.send("POST", a.URL+"/auth/logout")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the logout retried after the replica caught up = %d, want 303", resp.StatusCode)
	}
	if _, ok := a.sessionCookie(br); ok {
		t.Fatal("the completed logout left the cookie")
	}
	a.expectBackchannel(t, token, http.StatusOK, "retried")
	for _, id := range []string{id, otherID} {
		if exists(t, replica, id) {
			t.Fatal("the replica still has an ended session")
		}
	}
}

// lossRun is what the sessions of a lossy failover answered (see
// TestRedisFailoverLosesUnreplicatedWrites), by step and session.
type lossRun struct {
	cutOff, afterFailover, atNextRefresh, signedOutAgain map[string]int
	grants, reuses                                       int // refresh grants while cut off; reuses seen after the failover
}

// runLossyFailover signs in three sessions on g, cuts the replica off, then
// refreshes one ("refreshed"), signs a new one in ("signed in") and signs
// one out ("ended"), kills the primary, and asks every session again after
// the failover, once more when their access tokens are due, and after
// signing "ended" out again.
func runLossyFailover(t *testing.T, g *redistest.Group) lossRun {
	op := testOP(t, oidctest.Config{})
	var clk offsetClock
	apps := sentinelApps(t, op, g, 2, func(o *Options) { o.Now = clk.Now })
	a, b := apps[0], apps[1]
	ids := map[string]string{}
	for i, name := range []string{"refreshed", "ended", "untouched"} {
		ids[name] = signInMany(t, apps[i%2:], 1)[0]
	}
	g.Primary.Replicated(1, 5*time.Second)
	ask := func(names ...string) map[string]int {
		m := map[string]int{}
		for _, n := range names {
			m[n] = statusOf(t, b, browserWithCookie(t, b, ids[n]))
		}
		return m
	}
	due := oidctest.DefaultAccessTokenTTL - 30*time.Second // within RefreshSkew of expiry

	g.CutReplication()
	var run lossRun
	grants := op.RefreshGrants()
	clk.Advance(due)
	run.cutOff = ask("refreshed")
	clk.Advance(-due)
	run.grants = op.RefreshGrants() - grants
	br := newBrowser(t)
	resp, _ := br.follow(a.URL + "/auth/login?returnTo=/app")
	run.cutOff["signed in"] = resp.StatusCode
	ids["signed in"], _ = a.sessionCookie(br)
	run.cutOff["ended"] = logout(t, a, ids["ended"])

	reuses := op.RefreshReuses()
	g.Primary.Stop()
	g.WaitMaster(g.Replica.Addr, 30*time.Second)
	testsupport.WaitUntil(t, 10*time.Second, "the untouched session to be served again", func() bool { return ask("untouched")["untouched"] == 200 })
	run.afterFailover = ask("refreshed", "ended")
	if ids["signed in"] != "" {
		run.afterFailover["signed in"] = ask("signed in")["signed in"]
	}
	clk.Advance(due)
	run.atNextRefresh = ask("refreshed", "ended")
	run.reuses = op.RefreshReuses() - reuses
	run.signedOutAgain = map[string]int{"sign-out": logout(t, a, ids["ended"])}
	run.signedOutAgain["ended"] = ask("ended")["ended"]
	t.Logf("%+v", run)
	return run
}

// What a failover loses: the writes the primary took that its replica did
// not get (here the link between them is cut before the writes).
//
// By default Redis takes them all, and then: the new session is unknown
// (401: sign in again); the refreshed session is back at the refresh token
// the provider already rotated, so its next refresh is a reuse, which ends
// it; the signed-out session is back (bff waits for a replica only while one
// is online) until its access token is due, as the sign-out revoked its
// refresh token at the provider. With min-replicas-to-write the primary
// refuses writes without a replica: the sign-in and sign-out answer 503 and
// the refresh cannot take its lock (no grant; the current token serves),
// so after the failover nothing bff confirmed is lost, and the sign-out,
// retried, ends the session.
func TestRedisFailoverLosesUnreplicatedWrites(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		run := runLossyFailover(t, redistest.StartGroup(t))
		want := lossRun{
			cutOff:        map[string]int{"refreshed": 200, "signed in": 200, "ended": http.StatusSeeOther},
			afterFailover: map[string]int{"refreshed": 200, "ended": 200, "signed in": 401},
			atNextRefresh: map[string]int{"refreshed": 401, "ended": 401},
			// Already ended (by the refresh the revoked token failed).
			signedOutAgain: map[string]int{"sign-out": http.StatusSeeOther, "ended": 401},
			grants:         1, reuses: 1,
		}
		if !reflect.DeepEqual(run, want) {
			t.Fatalf("got  %+v\nwant %+v", run, want)
		}
	})
	t.Run("min-replicas-to-write", func(t *testing.T) {
		g := redistest.StartGroup(t)
		if _, err := g.Primary.Do("CONFIG", "SET", "min-replicas-to-write", "1"); err != nil {
			t.Fatal(err)
		}
		run := runLossyFailover(t, g)
		want := lossRun{
			cutOff:        map[string]int{"refreshed": 200, "signed in": 503, "ended": 503},
			afterFailover: map[string]int{"refreshed": 200, "ended": 200},
			atNextRefresh: map[string]int{"refreshed": 200, "ended": 200},
			// The sign-out refused while cut off, retried.
			signedOutAgain: map[string]int{"sign-out": http.StatusSeeOther, "ended": 401},
		}
		if !reflect.DeepEqual(run, want) {
			t.Fatalf("got  %+v\nwant %+v", run, want)
		}
	})
}
