package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/examples/internal/exampletest"
	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// metricLines returns the lines of GET /metrics that start with name.
func metricLines(t *testing.T, br *exampletest.Browser, appURL, name string) []string {
	t.Helper()
	r := br.Get(appURL + "/metrics")
	if r.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", r.StatusCode)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(r.Body))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// TestMetricsAfterSignIn: with the default BFF_METRICS=1, /metrics on the
// app's listener shows one successful sign-in after one sign-in, in
// Prometheus text format.
func TestMetricsAfterSignIn(t *testing.T) {
	_, appURL := startApp(t, nil)
	br := exampletest.NewBrowser(t)
	if lines := metricLines(t, br, appURL, "bff_login_total"); len(lines) != 0 {
		t.Errorf("sign-ins before any: %q", lines)
	}
	br.SignIn(appURL, "/", "alice", "alice")
	if r := br.Get(appURL + "/api/me"); r.StatusCode != 200 {
		t.Fatalf("GET /api/me: %d", r.StatusCode)
	}
	lines := metricLines(t, br, appURL, "bff_login_total")
	if len(lines) != 1 || lines[0] != `bff_login_total{outcome="success"} 1` {
		t.Errorf("bff_login_total lines %q, want exactly one success", lines)
	}
	if lines := metricLines(t, br, appURL, `bff_session_cache_total{result="miss"}`); len(lines) != 1 || !strings.HasSuffix(lines[0], " 1") {
		t.Errorf("session cache misses: %q, want 1", lines)
	}
	if lines := metricLines(t, br, appURL, "bff_provider_duration_seconds_count"); len(lines) < 3 {
		t.Errorf("provider call durations: %q, want discovery, token, jwks and userinfo", lines)
	}
}

// TestMetricsOff: BFF_METRICS=0 serves no /metrics.
func TestMetricsOff(t *testing.T) {
	_, appURL := startApp(t, map[string]string{"BFF_METRICS": "0"})
	br := exampletest.NewBrowser(t)
	if r := br.Get(appURL + "/metrics"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics with BFF_METRICS=0: %d, want 404", r.StatusCode)
	}
}

// waitReadyz polls /readyz until it answers want, and returns the body.
func waitReadyz(t *testing.T, br *exampletest.Browser, appURL string, want int) string {
	t.Helper()
	var r *testsupport.Response
	testsupport.WaitUntil(t, 15*time.Second, fmt.Sprintf("/readyz to answer %d", want), func() bool {
		r = br.Get(appURL + "/readyz")
		return r.StatusCode == want
	})
	return r.Body
}

// switchable serves h, or answers 503 while down.
type switchable struct {
	h    http.Handler
	down atomic.Bool
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.h.ServeHTTP(w, r)
}

// TestReadyzProviderDown: /readyz answers 503 while the provider is down
// and 200 once it is back.
func TestReadyzProviderDown(t *testing.T) {
	op := oidctest.New(oidctest.Config{SigningAlg: "ES256"})
	sw := &switchable{h: op}
	srv := httptest.NewServer(sw)
	t.Cleanup(srv.Close)
	op.SetIssuer(srv.URL)
	_, appURL := startApp(t, map[string]string{"BFF_ISSUER": op.Issuer(), "BFF_CLIENT_ID": op.ClientID(),
		"BFF_CLIENT_SECRET": op.ClientSecret()})
	br := exampletest.NewBrowser(t)
	if body := waitReadyz(t, br, appURL, 200); !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("/readyz with the provider up: %s", body)
	}
	sw.down.Store(true)
	body := waitReadyz(t, br, appURL, http.StatusServiceUnavailable)
	if !strings.Contains(body, `"provider":{"status":"down"}`) || !strings.Contains(body, `"status":"down"`) {
		t.Errorf("/readyz with the provider down: %s", body)
	}
	sw.down.Store(false)
	waitReadyz(t, br, appURL, 200)
}

// TestReadyzRedisDown: /readyz answers 503 while Redis is down and 200
// once it is back.
func TestReadyzRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	_, appURL := startApp(t, map[string]string{"BFF_REDIS_ADDR": rs.Addr})
	br := exampletest.NewBrowser(t)
	waitReadyz(t, br, appURL, 200)
	rs.Stop()
	if body := waitReadyz(t, br, appURL, http.StatusServiceUnavailable); !strings.Contains(body, `"store":{"status":"down"}`) {
		t.Errorf("/readyz with Redis down: %s", body)
	}
	rs.Restart()
	body := waitReadyz(t, br, appURL, 200)
	if !strings.Contains(body, `"invalidation":{"status":"`) {
		t.Errorf("/readyz with Redis has no invalidation check: %s", body)
	}
}
