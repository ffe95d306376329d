package bff

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// An issuer that does not match the discovery document's (here: a
// trailing slash) is a misconfiguration: an Error log with both values and
// a hint, once; sign-ins answer 500 "misconfigured", not "not reachable
// yet"; discovery is retried slowly, and succeeds once the provider is
// fixed.
func TestIssuerMismatch(t *testing.T) {
	op, front := frontedOP(t, oidctest.Config{})
	const path = "/.well-known/openid-configuration"
	front.set(path, func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		op.ServeHTTP(rec, r)
		var d map[string]any
		json.Unmarshal(rec.Body.Bytes(), &d)
		d["issuer"] = op.Issuer() + "/"
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	var logs logBuffer
	a := newUnreadyApp(t, op, func(o *Options) { o.Logger = logs.logger(); hooksOf(o).misconfigRetry = 30 * time.Millisecond })
	br := newBrowser(t)
	waitUntil(t, 10*time.Second, "a few slow retries", func() bool { return op.DiscoveryFetches() >= 4 })
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
	front.set(path, nil) // the provider is fixed
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
	a := newUnreadyApp(t, op, func(o *Options) { o.Logger = logs.logger() })
	br := newBrowser(t)
	waitUntil(t, 20*time.Second, "three attempts", func() bool {
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
	waitUntil(t, 10*time.Second, "discovery", func() bool {
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
		newApp(t, op, func(o *Options) { o.Logger = logs.logger() })
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
