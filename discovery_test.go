package bff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/testsupport"
)

// An issuer that does not match the discovery document's (here: a
// trailing slash) is a misconfiguration: an Error log with both values and
// a hint, once; sign-ins answer 500 "misconfigured", not "not reachable
// yet"; discovery is retried slowly, and succeeds once the provider is
// fixed.
func TestIssuerMismatch(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	op.Misbehave(func(m *oidctest.Misbehavior) { m.Discovery = map[string]any{"issuer": op.Issuer() + "/"} })
	var logs logBuffer
	a := newUnreadyApp(t, op, func(o *Options) { o.Logger = logs.Logger(); hooksOf(o).misconfigRetry = 30 * time.Millisecond })
	br := newBrowser(t)
	testsupport.WaitUntil(t, 10*time.Second, "a few slow retries", func() bool { return op.DiscoveryFetches() >= 4 })
	resp := br.get(a.URL + "/auth/login?returnTo=/app")
	if code, desc, _ := jsonError(t, resp); resp.StatusCode != 500 || code != "misconfigured" || !strings.Contains(desc, "misconfigured") {
		t.Fatalf("/auth/login = %d %q %q, want 500 misconfigured", resp.StatusCode, code, desc)
	}
	out := logs.String()
	if n := strings.Count(out, "level=ERROR"); n != 1 {
		t.Errorf("%d Error lines, want one for the same cause:\n%s", n, out)
	}
	for _, want := range []string{`issuer=` + op.Issuer() + " ", `discovered_issuer=` + op.Issuer() + "/", "trailing slash matters"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "level=WARN msg=\"bff: request failed") {
		t.Errorf("requests logged a Warn each:\n%s", out)
	}
	op.Reset() // the provider is fixed
	waitReady(t, a)
	a.login(br)
}

// While the provider is unreachable, the cause is logged once (then at
// Debug level), and the requests that fail meanwhile log no Warn of their
// own.
func TestDiscoveryLogsCauseOnce(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	op.Misbehave(func(m *oidctest.Misbehavior) { m.DiscoveryDown = true })
	var logs logBuffer
	a := newUnreadyApp(t, op, func(o *Options) { o.Logger = logs.Logger() })
	br := newBrowser(t)
	testsupport.WaitUntil(t, 20*time.Second, "three attempts", func() bool {
		a.status(br, "GET", "/auth/login") // each asks for an attempt now
		return op.DiscoveryFetches() >= 3
	})
	out := logs.String()
	if n := strings.Count(out, `level=WARN msg="bff: provider discovery failed`); n != 1 {
		t.Errorf("%d Warn lines for the same cause, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "503") || strings.Contains(out, `level=WARN msg="bff: request failed`) {
		t.Errorf("the cause (503) is not logged, or requests logged a Warn each:\n%s", out)
	}
	op.Reset()
	testsupport.WaitUntil(t, 10*time.Second, "discovery", func() bool {
		code, _ := a.status(br, "GET", "/auth/login")
		return code == http.StatusSeeOther
	})
}

// Discovery says once which features the provider lacks, and what bff does
// instead; a provider that has them all gets no such line.
func TestDiscoveryReportsLacks(t *testing.T) {
	lacks := func(t *testing.T, mb func(*oidctest.Misbehavior)) string {
		op := testOP(t, oidctest.Config{})
		if mb != nil {
			op.Misbehave(mb)
		}
		var logs logBuffer
		newApp(t, op, func(o *Options) { o.Logger = logs.Logger() })
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "the provider lacks features") {
				return line
			}
		}
		return ""
	}
	if line := lacks(t, nil); line != "" {
		t.Errorf("a complete provider: %s", line)
	}
	line := lacks(t, func(m *oidctest.Misbehavior) {
		m.NoRevocation, m.NoEndSession, m.NoUserinfo, m.NoIssParamSupport = true, true, true, true
	})
	for _, want := range []string{"level=WARN", "revocation_endpoint=", "stays valid at the provider", "end_session_endpoint=",
		"userinfo_endpoint=", "authorization_response_iss_parameter_supported="} {
		if !strings.Contains(line, want) {
			t.Errorf("lacks line %q does not say %q", line, want)
		}
	}
	if strings.Contains(line, "backchannel") {
		t.Errorf("back-channel logout reported missing: %s", line)
	}
}

// The app starts while the provider is unreachable; sign-in answers 503 at
// once until discovery succeeds, then works.
func TestDiscoveryUnavailable(t *testing.T) {
	check503 := func(t *testing.T, a *app, br *browser) {
		t.Helper()
		resp := br.get(a.URL + "/auth/login?returnTo=/app")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Location") != "" {
			t.Fatalf("/auth/login = %d (Retry-After %q, Location %q), want 503 with Retry-After",
				resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Location"))
		}
		if code, _, _ := jsonError(t, resp); code != "temporarily_unavailable" {
			t.Errorf("error = %q", code)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if err := a.bff.Ready(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Ready = %v, want ErrUnavailable", err)
		}
		// The API still answers: no session is 401, not a hang.
		a.expect(t, br, "/api/me", 401, "")
	}
	// waitLogin polls /auth/login (each request asks for a discovery
	// attempt at once) until sign-in starts.
	waitLogin := func(t *testing.T, a *app, br *browser) {
		t.Helper()
		waitStatus(t, a, br, "/auth/login", http.StatusSeeOther)
		a.login(br)
	}

	t.Run("discovery_down", func(t *testing.T) {
		op := testOP(t, oidctest.Config{SigningAlg: "ES256"})
		op.Misbehave(func(m *oidctest.Misbehavior) { m.DiscoveryDown = true })
		a := newUnreadyApp(t, op, nil)
		br := newBrowser(t)
		check503(t, a, br)
		op.Reset()
		waitLogin(t, a, br)
	})

	t.Run("issuer_not_listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		op := oidctest.New(oidctest.Config{Issuer: "http://" + addr, SigningAlg: "ES256"})
		a := newUnreadyApp(t, op, nil)
		br := newBrowser(t)
		check503(t, a, br)

		// The provider comes up on that address.
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("cannot listen on %s again: %v", addr, err)
		}
		srv := &http.Server{Handler: op}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		waitLogin(t, a, br)
	})
}

// Every provider endpoint of the discovery document must be https, except
// on a loopback host: one over plain http elsewhere (codes, tokens and keys
// in clear text) makes discovery fail, and sign-in answers 503, unless
// InsecureAllowHTTPEndpoints is set.
func TestProviderEndpointsRequireHTTPS(t *testing.T) {
	members := []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
		"revocation_endpoint", "end_session_endpoint", "pushed_authorization_request_endpoint"}
	for _, m := range members {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			op := testOP(t, oidctest.Config{})
			op.Misbehave(func(mb *oidctest.Misbehavior) { mb.Discovery = map[string]any{m: "http://idp.example/x"} })
			logs := &logBuffer{}
			a := newUnreadyApp(t, op, func(o *Options) { o.Logger = logs.Logger() })
			testsupport.WaitUntil(t, 10*time.Second, "a refused discovery", func() bool {
				return strings.Contains(logs.String(), "provider discovery failed")
			})
			if !strings.Contains(logs.String(), m) || !strings.Contains(logs.String(), "https") {
				t.Errorf("the log does not say which endpoint and why:\n%s", logs)
			}
			a.expect(t, newBrowser(t), "/auth/login", http.StatusServiceUnavailable, "")
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			if a.bff.Ready(ctx) == nil {
				t.Error("discovery succeeded")
			}

			newApp(t, op, func(o *Options) { o.InsecureAllowHTTPEndpoints = true })
		})
	}
	t.Run("https_and_loopback", func(t *testing.T) {
		t.Parallel()
		op := testOP(t, oidctest.Config{})
		op.Misbehave(func(mb *oidctest.Misbehavior) {
			mb.Discovery = map[string]any{"userinfo_endpoint": "https://idp.example/userinfo",
				"revocation_endpoint": "http://127.0.0.1:1/revoke", "end_session_endpoint": "http://[::1]:1/end"}
		})
		newApp(t, op, nil)
	})
}

// A provider that does not advertise PKCE S256 is refused (no sign-in
// starts: 500 misconfigured, discovery retried slowly), unless
// InsecureAllowNoPKCE.
func TestProviderWithoutS256(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		op := testOP(t, oidctest.Config{SigningAlg: "ES256"})
		op.Misbehave(func(m *oidctest.Misbehavior) { m.NoS256 = true })
		a := newUnreadyApp(t, op, func(o *Options) { hooksOf(o).misconfigRetry = 20 * time.Millisecond })
		br := newBrowser(t)
		// Until discovery has run twice (the first attempt is over, so its
		// verdict counts), and once more after.
		n := 0
		testsupport.WaitUntil(t, 10*time.Second, "discovery to be retried", func() bool {
			if op.DiscoveryFetches() >= 2 {
				n++
			}
			resp := br.get(a.URL + "/auth/login?returnTo=/app")
			if op.DiscoveryFetches() < 2 && resp.StatusCode == http.StatusServiceUnavailable {
				resp.Body.Close()
				return false // the first attempt is still running
			}
			if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Location") != "" {
				t.Fatalf("/auth/login = %d to %q, want 500", resp.StatusCode, resp.Header.Get("Location"))
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("cookies set: %v", resp.Cookies())
			}
			if code, desc, _ := jsonError(t, resp); code != "misconfigured" || !strings.Contains(desc, "misconfigured") {
				t.Errorf("error %q %q, want misconfigured", code, desc)
			}
			return n >= 3
		})
	})
	t.Run("InsecureAllowNoPKCE", func(t *testing.T) {
		op := testOP(t, oidctest.Config{SigningAlg: "ES256"})
		op.Misbehave(func(m *oidctest.Misbehavior) { m.NoS256 = true })
		a := newApp(t, op, func(o *Options) { o.InsecureAllowNoPKCE = true })
		br := newBrowser(t)
		resp := br.send("GET", a.URL+"/auth/login")
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("code_challenge_method") != "S256" {
			t.Fatalf("/auth/login = %d to %v; PKCE must still be sent", resp.StatusCode, loc)
		}
		a.login(br)
	})
}
