package bff

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
)

// TestLoad is a bounded load test on loopback: sessions signed in through
// the real flow (the non-interactive test provider, one user per session),
// then mixed API traffic in three phases with the clock moved past the
// access tokens' lifetime between phases (so every session refreshes, with
// two concurrent requests racing for it), and ~10% of the sessions signing
// out along the way; on the memory store and on Redis with two instances
// sharing it (requests spread over both). Afterwards every session must be
// in exactly the state its history says: signed-out sessions answer 401 on
// every instance and have no store record; live ones answer 200, their
// stored refresh token is valid at the provider and no token family was
// revoked (no lost refresh token, no resurrected session).
//
// It runs only when asked: go test -run Load (any -run pattern naming it),
// or BFF_LOAD=1. The default budget (1,000 sessions, 20,000 API requests,
// 60 s cap per store) runs in well under a minute; change it with
// BFF_LOAD_SESSIONS, BFF_LOAD_REQUESTS and BFF_LOAD_TIMEOUT (a Go
// duration). The test provider keeps at most 10,000 tokens of each kind,
// which bounds sessions × 3 refreshes.
func TestLoad(t *testing.T) {
	if !loadRequested() {
		t.Skip("load test: run with -run Load or BFF_LOAD=1")
	}
	cfg := loadConfig{
		sessions: envInt(t, "BFF_LOAD_SESSIONS", 1000),
		requests: envInt(t, "BFF_LOAD_REQUESTS", 20000),
		timeout:  60 * time.Second,
		workers:  32,
	}
	if s := os.Getenv("BFF_LOAD_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("BFF_LOAD_TIMEOUT: %v", err)
		}
		cfg.timeout = d
	}
	t.Run("memory", func(t *testing.T) { runLoad(t, cfg, nil) })
	t.Run("redis", func(t *testing.T) { runLoad(t, cfg, redistest.Start(t)) })
}

func loadRequested() bool {
	if os.Getenv("BFF_LOAD") == "1" {
		return true
	}
	f := flag.Lookup("test.run")
	return f != nil && strings.Contains(f.Value.String(), "Load")
}

type loadConfig struct {
	sessions, requests, workers int
	timeout                     time.Duration
}

// loadUser is one simulated browser and what its history says.
type loadUser struct {
	sub, hint string
	jar       *cookiejar.Jar
	client    *http.Client
	id        string // session ID after sign-in
	loggedOut bool
}

// loadStats collects the outcome of every API request.
type loadStats struct {
	mu          sync.Mutex
	latencies   []time.Duration
	errors      map[string]int
	unavailable int // 503 (allowed under load: the session is kept)
}

func (s *loadStats) add(d time.Duration, errKind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies = append(s.latencies, d)
	switch errKind {
	case "":
	case "503":
		s.unavailable++
	default:
		s.errors[errKind]++
	}
}

func runLoad(t *testing.T, cfg loadConfig, rs *redistest.Server) {
	clock := &offsetClock{}
	users := make([]oidctest.User, cfg.sessions)
	for i := range users {
		users[i] = oidctest.User{Subject: fmt.Sprintf("user-%05d", i), Username: fmt.Sprintf("u%05d", i),
			Password: "x", Name: fmt.Sprintf("User %d", i), Email: fmt.Sprintf("u%d@example.com", i)}
	}
	op := testOP(t, oidctest.Config{Users: users, Now: clock.Now, SigningAlg: "ES256"})

	// Clients with connection pools sized for the concurrency (the default
	// transport keeps 2 idle connections per host: every other request
	// would open a connection).
	newTransport := func() *http.Transport {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2 * cfg.workers
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}
	bffClient := &http.Client{Timeout: 10 * time.Second, Transport: newTransport()}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var apps []*app
	for i := range map[bool]int{false: 1, true: 2}[rs != nil] {
		apps = append(apps, newApp(t, op, func(o *Options) {
			o.Now, o.HTTPClient, o.Logger = clock.Now, bffClient, quiet
			if rs != nil {
				o.Redis = NewRedisPool(rs.Addr)
				t.Cleanup(func() { o.Redis.Close() })
			}
			if i > 0 {
				o.BaseURL = apps[0].URL
			}
		}))
	}
	browserTransport := newTransport()
	deadline := time.Now().Add(cfg.timeout)

	// parallel runs f for every user on cfg.workers goroutines, until the
	// deadline.
	parallel := func(f func(i int, u *loadUser)) {
		parallelFor(len(lusers), cfg.workers, func(i int) {
			if time.Now().Before(deadline) {
				f(i, lusers[i])
			}
		})
	}

	// Sign-in through the real flow.
	lusers = make([]*loadUser, cfg.sessions)
	for i := range lusers {
		jar, _ := cookiejar.New(nil)
		lusers[i] = &loadUser{sub: users[i].Subject, hint: users[i].Username, jar: jar, client: &http.Client{
			Jar: jar, Transport: browserTransport, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	}
	var loginErrs atomic.Int64
	start := time.Now()
	parallel(func(i int, u *loadUser) {
		if err := loadLogin(apps[0], u); err != nil {
			if loginErrs.Add(1) <= 3 {
				t.Errorf("sign-in of %s: %v", u.sub, err)
			}
		}
	})
	loginTime := time.Since(start)
	signedIn := 0
	for _, u := range lusers {
		if u.id != "" {
			signedIn++
		}
	}
	t.Logf("%d sessions signed in in %v (%.0f/s), %d failed", signedIn, loginTime, float64(signedIn)/loginTime.Seconds(), loginErrs.Load())
	if signedIn == 0 {
		t.Fatal("no session signed in")
	}

	// Mixed traffic in three phases.
	stats := &loadStats{errors: map[string]int{}}
	const phases = 3
	perUser := max((cfg.requests+phases*cfg.sessions-1)/(phases*cfg.sessions), 2)
	var sent atomic.Int64
	start = time.Now()
	for phase := range phases {
		if phase > 0 {
			clock.Advance(oidctest.DefaultAccessTokenTTL + time.Minute) // every access token needs a refresh
		}
		parallel(func(i int, u *loadUser) {
			if u.id == "" || u.loggedOut {
				return
			}
			// Two concurrent requests race for the refresh (on two
			// instances with Redis).
			var wg sync.WaitGroup
			for k := range 2 {
				wg.Go(func() {
					loadRequest(apps[k%len(apps)], u, "GET", "/api/me", stats)
				})
			}
			wg.Wait()
			for k := 2; k < perUser && sent.Load() < int64(cfg.requests); k++ {
				a := apps[(i+k)%len(apps)]
				if k%4 == 3 {
					loadRequest(a, u, "POST", "/api/echo", stats)
				} else {
					loadRequest(a, u, "GET", "/api/me", stats)
				}
			}
			sent.Add(int64(max(perUser, 2)))
			if phase > 0 && i%20 == phase { // 10% sign out, half in each later phase
				req, _ := http.NewRequest("POST", apps[i%len(apps)].URL+"/auth/logout", nil)
				resp, err := u.client.Do(req)
				if err != nil {
					stats.add(0, "logout: "+err.Error())
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusSeeOther {
					stats.add(0, fmt.Sprintf("logout %d", resp.StatusCode))
					return
				}
				u.loggedOut = true
			}
		})
	}
	elapsed := time.Since(start)
	if time.Now().After(deadline) {
		t.Logf("the %v time limit cut the traffic short", cfg.timeout)
	}

	lat := slices.Clone(stats.latencies)
	slices.Sort(lat)
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	nerr := 0
	for _, n := range stats.errors {
		nerr += n
	}
	loggedOut := 0
	for _, u := range lusers {
		if u.loggedOut {
			loggedOut++
		}
	}
	t.Logf("%d API requests in %v: %.0f requests/s, p50 %v, p99 %v, max %v; %d errors %v, %d answered 503; %d refresh grants, %d sessions signed out",
		len(lat), elapsed.Round(time.Millisecond), float64(len(lat))/elapsed.Seconds(), p(0.5), p(0.99), p(1),
		nerr, stats.errors, stats.unavailable, op.RefreshGrants(), loggedOut)
	if nerr > 0 {
		t.Errorf("%d requests failed: %v", nerr, stats.errors)
	}

	// Every session is in the state its history says.
	var bad atomic.Int64
	report := func(format string, args ...any) {
		if bad.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	deadline = time.Now().Add(time.Minute) // the check itself is not cut short
	parallel(func(i int, u *loadUser) {
		if u.id == "" {
			return
		}
		want := 200
		if u.loggedOut {
			want = 401
		}
		for _, a := range apps {
			// The session ID is sent explicitly: a signed-out browser's jar
			// no longer has it, an attacker's might.
			req, _ := http.NewRequest("GET", a.URL+"/api/me", nil)
			req.Header.Set("Cookie", a.bff.cfg.CookieName+"="+u.id)
			resp, err := browserTransport.RoundTrip(req)
			if err != nil {
				report("%s: %v", u.sub, err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				report("%s (signed out %v) on %s: /api/me = %d, want %d", u.sub, u.loggedOut, a.URL, resp.StatusCode, want)
			}
		}
		s, err := apps[0].bff.store.read(context.Background(), recordName(u.id))
		switch {
		case u.loggedOut && err != errNotFound:
			report("%s signed out but its session record is still there (%v)", u.sub, err)
		case !u.loggedOut && err != nil:
			report("%s: session record lost: %v", u.sub, err)
		case !u.loggedOut && !op.RefreshTokenValid(s.rec.RefreshToken):
			report("%s: the stored refresh token is not valid at the provider (lost refresh token)", u.sub)
		case !u.loggedOut && op.FamilyRevoked(u.sub):
			report("%s: a token family was revoked (refresh token reuse)", u.sub)
		}
	})
	if n := bad.Load(); n > 0 {
		t.Errorf("%d sessions not in the state their history says", n)
	}
}

// lusers is the current load test's users (runLoad's subtests run one at a
// time).
var lusers []*loadUser

// loadLogin signs u in on a through the provider, as u's user.
func loadLogin(a *app, u *loadUser) error {
	resp, err := u.client.Get(a.URL + "/auth/login?returnTo=/app")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("/auth/login = %d", resp.StatusCode)
	}
	authz := resp.Header.Get("Location") + "&login_hint=" + url.QueryEscape(u.hint)
	resp, err = u.client.Get(authz)
	if err != nil {
		return err
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, a.URL+"/auth/callback") {
		return fmt.Errorf("authorize = %d %q", resp.StatusCode, cb)
	}
	resp, err = u.client.Get(cb)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app" {
		return fmt.Errorf("callback = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	base, _ := url.Parse(a.URL)
	for _, c := range u.jar.Cookies(base) {
		if c.Name == a.bff.cfg.CookieName {
			u.id = c.Value
		}
	}
	if u.id == "" {
		return fmt.Errorf("no session cookie")
	}
	return nil
}

// loadRequest sends one API request for a live session and records it.
func loadRequest(a *app, u *loadUser, method, path string, stats *loadStats) {
	var body io.Reader
	payload := `{"user":"` + u.sub + `"}`
	if method == "POST" {
		body = strings.NewReader(payload)
	}
	req, _ := http.NewRequest(method, a.URL+path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		stats.add(time.Since(start), "transport")
		return
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		stats.add(d, "503")
	case resp.StatusCode != 200:
		stats.add(d, fmt.Sprintf("%s %d", path, resp.StatusCode))
	case method == "POST" && string(got) != payload:
		stats.add(d, "echo mismatch")
	case method == "GET" && !strings.Contains(string(got), `"sub":"`+u.sub+`"`):
		stats.add(d, "wrong user")
	default:
		stats.add(d, "")
	}
}
