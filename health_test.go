package bff

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// probeHealth serves one request to a's health handler and returns its
// status and decoded body.
func probeHealth(t testing.TB, a *app) (int, Health, string) {
	t.Helper()
	w := httptest.NewRecorder()
	a.bff.HealthHandler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	var h struct {
		Status HealthStatus                                `json:"status"`
		Checks map[HealthCheckName]map[string]HealthStatus `json:"checks"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &h); err != nil {
		t.Fatalf("health body %q: %v", w.Body, err)
	}
	out := Health{Status: h.Status, Checks: map[HealthCheckName]HealthCheck{}}
	for name, c := range h.Checks {
		out.Checks[name] = HealthCheck{Status: c["status"]}
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("health Cache-Control %q, want no-store", cc)
	}
	return w.Code, out, w.Body.String()
}

// waitHealth polls the health handler until it answers want (each report
// lives healthTTL, so a change shows within about that long).
func waitHealth(t testing.TB, a *app, want int) Health {
	t.Helper()
	var h Health
	testsupport.WaitUntil(t, 10*time.Second, "health status "+http.StatusText(want), func() bool {
		var code int
		code, h, _ = probeHealth(t, a)
		return code == want
	})
	return h
}

func TestHealthMemoryStore(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	code, h, body := probeHealth(t, a)
	if code != 200 || h.Status != HealthOK || len(h.Checks) != 2 ||
		h.Checks[HealthCheckProvider].Status != HealthOK || h.Checks[HealthCheckStore].Status != HealthOK {
		t.Fatalf("health = %d %s, want 200 ok with provider and store ok", code, body)
	}
	w := httptest.NewRecorder()
	a.bff.HealthHandler().ServeHTTP(w, httptest.NewRequest("POST", "/readyz", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST health: %d Allow %q, want 405 GET, HEAD", w.Code, w.Header().Get("Allow"))
	}
}

// TestHealthProviderDown: 503 while the provider cannot be reached, with
// no error text in the body; 200 after it recovers.
func TestHealthProviderDown(t *testing.T) {
	op, front := frontedOP(t, oidctest.Config{SigningAlg: "ES256"})
	a := newApp(t, op, nil)
	waitHealth(t, a, 200)

	front.setDown(true)
	h := waitHealth(t, a, http.StatusServiceUnavailable)
	if h.Status != HealthDown || h.Checks[HealthCheckProvider].Status != HealthDown || h.Checks[HealthCheckStore].Status != HealthOK {
		t.Errorf("provider down: %+v, want down with the provider down and the store ok", h)
	}
	_, _, body := probeHealth(t, a)
	for _, leak := range []string{"127.0.0.1", "localhost", "connection", "EOF", "error"} {
		if strings.Contains(body, leak) {
			t.Errorf("health body %q contains %q", body, leak)
		}
	}
	rep := a.bff.Health(context.Background())
	if rep.Checks[HealthCheckProvider].Err == nil {
		t.Error("Health: the provider check has no Err to log")
	}

	front.setDown(false)
	waitHealth(t, a, 200)
}

// TestHealthBeforeDiscovery: a BFF whose provider has never been
// discovered is not ready.
func TestHealthBeforeDiscovery(t *testing.T) {
	op, front := frontedOP(t, oidctest.Config{SigningAlg: "ES256"})
	front.setDown(true)
	a := newUnreadyApp(t, op, nil)
	code, h, _ := probeHealth(t, a)
	if code != http.StatusServiceUnavailable || h.Checks[HealthCheckProvider].Status != HealthDown {
		t.Fatalf("before discovery: %d %+v, want 503 with the provider down", code, h)
	}
	front.setDown(false)
	waitHealth(t, a, 200)
}

// TestHealthCached: probes within healthTTL share one check of the
// provider; concurrent probes share one run.
func TestHealthCached(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	before := a.op.DiscoveryFetches()
	parallelFor(20, 20, func(int) { a.bff.Health(context.Background()) })
	for range 20 {
		probeHealth(t, a)
	}
	if got := a.op.DiscoveryFetches() - before; got != 1 {
		t.Errorf("%d discovery fetches for 40 health probes within %v, want 1", got, healthTTL)
	}
}

// TestHealthRedis: 503 while Redis is down (store down; the invalidation
// channel too), 200 after it is back, with every check ok.
func TestHealthRedis(t *testing.T) {
	rs := redistest.Start(t)
	a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	waitHealthy(t, a)
	h := waitHealth(t, a, 200)
	if len(h.Checks) != 3 || h.Checks[HealthCheckInvalidation].Status != HealthOK {
		t.Errorf("Redis up: %+v, want three checks ok", h)
	}

	rs.Stop()
	h = waitHealth(t, a, http.StatusServiceUnavailable)
	if h.Checks[HealthCheckStore].Status != HealthDown || h.Checks[HealthCheckProvider].Status != HealthOK {
		t.Errorf("Redis down: %+v, want the store down and the provider ok", h)
	}

	rs.Restart()
	testsupport.WaitUntil(t, 10*time.Second, "every check ok", func() bool {
		code, h, _ := probeHealth(t, a)
		return code == 200 && h.Status == HealthOK
	})
}

// TestHealthCustomStore: the custom store is asked for a record; a store
// that fails makes the report down.
func TestHealthCustomStore(t *testing.T) {
	st := newSpyStore(t)
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Store = st })
	if code, _, body := probeHealth(t, a); code != 200 {
		t.Fatalf("custom store up: %d %s", code, body)
	}
	if calls, _ := st.work(); calls["find "+healthProbeKey] != 1 {
		t.Errorf("the custom store was asked %d times for the probe record, want 1", calls["find "+healthProbeKey])
	}
	st.setHook(func(context.Context, string, string) error { return errors.New("store down") })
	h := waitHealth(t, a, http.StatusServiceUnavailable)
	if h.Checks[HealthCheckStore].Status != HealthDown {
		t.Errorf("custom store failing: %+v", h)
	}
	st.setHook(nil)
	waitHealth(t, a, 200)
}

// TestHealthHEAD: HEAD answers the status without a body.
func TestHealthHEAD(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	srv := httptest.NewServer(a.bff.HealthHandler())
	t.Cleanup(srv.Close)
	if resp := newBrowser(t).Do("HEAD", srv.URL, ""); resp.StatusCode != 200 || resp.Body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, resp.Body)
	}
}

// TestHealthDegraded: with Redis up but the invalidation channel down,
// requests read Redis: the report is degraded and the answer still 200.
func TestHealthDegraded(t *testing.T) {
	rs := redistest.Start(t)
	a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	waitHealthy(t, a)
	waitHealth(t, a, 200)
	a.bff.store.bus.Close() // the channel stops; Close is idempotent
	var h Health
	testsupport.WaitUntil(t, 10*time.Second, "a degraded report", func() bool {
		var code int
		code, h, _ = probeHealth(t, a)
		if code != 200 {
			t.Fatalf("invalidation channel down: %d, want 200", code)
		}
		return h.Status == HealthDegraded
	})
	if h.Checks[HealthCheckInvalidation].Status != HealthDown || h.Checks[HealthCheckStore].Status != HealthOK {
		t.Errorf("degraded report %+v, want the invalidation channel down and the store ok", h)
	}
}
