package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gobff/bff/examples/internal/exampletest"
	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// TestTwoInstancesShareRedis runs two instances of the chi example behind
// one origin (a switch plays the load balancer) on one Redis: a session
// signed in on A is served by B, and signing out on B ends it on A.
func TestTwoInstancesShareRedis(t *testing.T) {
	rs := redistest.Start(t)
	var useB atomic.Bool
	var a, b http.Handler
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if useB.Load() {
			b.ServeHTTP(w, r)
		} else {
			a.ServeHTTP(w, r)
		}
	}))
	defer lb.Close()
	appURL := strings.Replace(lb.URL, "127.0.0.1", "localhost", 1)
	idpAddr := testsupport.FreeAddr(t)

	common := map[string]string{
		"BFF_BASE_URL":   appURL,
		"BFF_REDIS_ADDR": rs.Addr,
		"BFF_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	}
	start := func(extra map[string]string) http.Handler {
		env := func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return common[k]
		}
		s, err := newServer(env, exampletest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s.Handler
	}
	a = start(map[string]string{"BFF_DEV_IDP_ADDR": idpAddr}) // A runs the dev IdP
	b = start(map[string]string{
		"BFF_ISSUER":        "http://" + idpAddr,
		"BFF_CLIENT_ID":     oidctest.DefaultClientID,
		"BFF_CLIENT_SECRET": oidctest.DefaultClientSecret,
	})

	useB.Store(true)
	exampletest.WaitReady(t, appURL)
	useB.Store(false)
	exampletest.WaitReady(t, appURL)

	br := exampletest.NewBrowser(t)
	if r := br.Get(appURL + "/api/me"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("signed out GET /api/me: %d", r.StatusCode)
	}
	if r := br.SignIn(appURL, "/", "alice", "alice"); r.StatusCode != 200 || !strings.Contains(r.Body, `id="status"`) {
		t.Fatalf("sign-in on A landed with %d", r.StatusCode)
	}

	useB.Store(true)
	r := br.Get(appURL + "/api/me")
	var m map[string]string
	if r.StatusCode != 200 || json.Unmarshal([]byte(r.Body), &m) != nil || m["sub"] != "alice-0001" || m["email"] != "alice@example.com" || m["tokenExpiresAt"] == "" {
		t.Fatalf("GET /api/me on B: %d %s", r.StatusCode, r.Body)
	}
	body := `{"hello":"chi"}`
	if r := br.Do("POST", appURL+"/api/echo", body, "Content-Type", "application/json", "Origin", appURL, "Sec-Fetch-Site", "same-origin"); r.StatusCode != 200 || r.Body != body {
		t.Errorf("POST /api/echo on B: %d %q", r.StatusCode, r.Body)
	}
	if r := br.Do("POST", appURL+"/api/echo", body, "Content-Type", "text/plain", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST /api/echo on B: %d, want 403", r.StatusCode)
	}
	out := br.Follow(br.Do("POST", appURL+"/auth/logout", "", "Origin", appURL, "Sec-Fetch-Site", "same-origin"))
	if out.StatusCode != 200 || out.Request.URL.String() != appURL+"/" {
		t.Fatalf("sign-out on B ended at %s with %d", out.Request.URL, out.StatusCode)
	}

	useB.Store(false)
	if r := br.Get(appURL + "/api/me"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/me on A after sign-out on B: %d, want 401", r.StatusCode)
	}
}
