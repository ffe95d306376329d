package oidctest

import (
	"net/http/cookiejar"
	"net/url"
	"slices"
	"testing"
	"time"
)

// withJar gives the env's client a cookie jar, so that the provider's
// session cookie comes back as a browser's would.
func (e *env) withJar() *env {
	jar, _ := cookiejar.New(nil)
	e.c.Jar = jar
	return e
}

// idClaims runs a whole flow and returns the ID token's claims.
func (e *env) idClaims(a *authReq) map[string]any {
	e.t.Helper()
	tok := e.login(a)
	c, _, err := e.verify(tok["id_token"].(string))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func TestACRAndAMR(t *testing.T) {
	e := newEnv(t, Config{}, "")
	for _, tc := range []struct {
		name  string
		extra url.Values
		mb    func(*Misbehavior)
		acr   string
		amr   []string
	}{
		{"default_basic", nil, nil, ACRBasic, []string{"pwd"}},
		{"acr_values_strong", url.Values{"acr_values": {"urn:unknown " + ACRStrong}}, nil, ACRStrong, []string{"pwd", "otp"}},
		{"unknown_acr_basic", url.Values{"acr_values": {"urn:unknown"}}, nil, ACRBasic, []string{"pwd"}},
		{"claims_essential_strong", url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + ACRStrong + `"]}}}`}}, nil, ACRStrong, []string{"pwd", "otp"}},
		{"claims_value_strong", url.Values{"claims": {`{"id_token":{"acr":{"value":"` + ACRStrong + `"}}}`}}, nil, ACRStrong, []string{"pwd", "otp"}},
		{"ignore_acr", url.Values{"acr_values": {ACRStrong}}, func(m *Misbehavior) { m.IgnoreACR = true }, ACRBasic, []string{"pwd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.op.Reset()
			if tc.mb != nil {
				e.op.Misbehave(tc.mb)
			}
			before := time.Now().Unix()
			c := e.idClaims(&authReq{extra: tc.extra})
			if c["acr"] != tc.acr || !slices.Equal(toStrings(c["amr"]), tc.amr) {
				t.Errorf("acr %v amr %v, want %s %v", c["acr"], c["amr"], tc.acr, tc.amr)
			}
			if at, _ := c["auth_time"].(float64); int64(at) < before {
				t.Errorf("auth_time %v is before the sign-in (%d)", c["auth_time"], before)
			}
		})
	}
	t.Run("auth_time_misbehaviour", func(t *testing.T) {
		e.op.Reset()
		e.op.Misbehave(func(m *Misbehavior) { m.AuthTimeAgo = time.Hour })
		if at, _ := e.idClaims(&authReq{})["auth_time"].(float64); time.Since(time.Unix(int64(at), 0)) < 59*time.Minute {
			t.Errorf("auth_time %v, want an hour ago", at)
		}
		e.op.Misbehave(func(m *Misbehavior) { m.OmitAuthTime = true })
		if c := e.idClaims(&authReq{}); c["auth_time"] != nil {
			t.Errorf("auth_time %v, want none", c["auth_time"])
		}
	})
}

func TestPromptNone(t *testing.T) {
	clock := time.Now()
	now := func() time.Time { return clock }
	e := newEnv(t, Config{Now: now}, "").withJar()
	silent := func(extra url.Values) url.Values {
		t.Helper()
		x := url.Values{"prompt": {"none"}}
		for k, v := range extra {
			x[k] = v
		}
		return e.authorize(&authReq{extra: x})
	}
	// No session at the provider: login_required.
	if q := silent(nil); q.Get("error") != "login_required" || q.Get("code") != "" {
		t.Fatalf("without a session: %v", q)
	}
	first := e.idClaims(&authReq{})
	// With the session: a code, no new authentication (same sid and
	// auth_time).
	clock = clock.Add(time.Minute)
	a := &authReq{extra: url.Values{"prompt": {"none"}}}
	q := e.authorize(a)
	if q.Get("code") == "" {
		t.Fatalf("with a session: %v", q)
	}
	_, tok := e.exchange(q.Get("code"), a.verifier)
	second, _, err := e.verify(tok["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if second["sid"] != first["sid"] || second["auth_time"] != first["auth_time"] {
		t.Errorf("silent sign-in: sid %v auth_time %v, want the session's %v %v", second["sid"], second["auth_time"], first["sid"], first["auth_time"])
	}
	// A stronger level cannot be had silently; an old session neither.
	if q := silent(url.Values{"acr_values": {ACRStrong}}); q.Get("error") != "interaction_required" {
		t.Errorf("silent step-up: %v", q)
	}
	if q := silent(url.Values{"max_age": {"30"}}); q.Get("error") != "login_required" {
		t.Errorf("silent with max_age exceeded: %v", q)
	}
	e.op.Misbehave(func(m *Misbehavior) { m.IgnoreMaxAge = true })
	if q := silent(url.Values{"max_age": {"30"}}); q.Get("code") == "" {
		t.Errorf("IgnoreMaxAge: %v", q)
	}
	e.op.Reset()
	if q := silent(url.Values{"max_age": {"300"}}); q.Get("code") == "" {
		t.Errorf("silent within max_age: %v", q)
	}
	// prompt=none combined with another value, or an unknown value, is
	// refused.
	if q := silent(url.Values{"prompt": {"none login"}}); q.Get("error") != "invalid_request" {
		t.Errorf("prompt=none login: %v", q)
	}
	if q := e.authorize(&authReq{extra: url.Values{"prompt": {"bogus"}}}); q.Get("error") != "invalid_request" {
		t.Errorf("prompt=bogus: %v", q)
	}
	if q := e.authorize(&authReq{extra: url.Values{"max_age": {"-1"}}}); q.Get("error") != "invalid_request" {
		t.Errorf("max_age=-1: %v", q)
	}
	// Ending the OP session (end-session, with the browser's cookie) makes
	// the next silent sign-in login_required.
	resp, err := e.c.Get(e.op.Endpoint("/end-session"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if q := silent(nil); q.Get("error") != "login_required" {
		t.Errorf("after end-session: %v", q)
	}
}

func TestStrictOfflineAccess(t *testing.T) {
	e := newEnv(t, Config{StrictOfflineAccess: true}, "")
	if tok := e.login(&authReq{}); tok["refresh_token"] != nil {
		t.Errorf("offline_access without prompt=consent gave a refresh token")
	}
	if tok := e.login(&authReq{extra: url.Values{"prompt": {"consent"}}}); tok["refresh_token"] == nil {
		t.Errorf("offline_access with prompt=consent gave no refresh token")
	}
}
