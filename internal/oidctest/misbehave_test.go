package oidctest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestIDTokenMisbehaviour checks that each ID token toggle does what it says
// (and only that).
func TestIDTokenMisbehaviour(t *testing.T) {
	e := newEnv(t, Config{}, "")
	for _, tc := range []struct {
		name  string
		set   func(*Misbehavior)
		check func(t *testing.T, c map[string]any, nonce, at string, verr error)
	}{
		{"IDTokenIssuer", func(m *Misbehavior) { m.IDTokenIssuer = "https://evil.example" }, func(t *testing.T, c map[string]any, _, _ string, _ error) {
			if c["iss"] != "https://evil.example" {
				t.Errorf("iss %v", c["iss"])
			}
		}},
		{"ExtraAudience", func(m *Misbehavior) { m.ExtraAudience = "other" }, func(t *testing.T, c map[string]any, _, _ string, _ error) {
			if a := toStrings(c["aud"]); len(a) != 2 || a[0] != "bff-client" || a[1] != "other" || c["azp"] != "bff-client" {
				t.Errorf("aud %v azp %v", c["aud"], c["azp"])
			}
		}},
		{"AZP", func(m *Misbehavior) { m.AZP = "other" }, func(t *testing.T, c map[string]any, _, _ string, _ error) {
			if c["azp"] != "other" {
				t.Errorf("azp %v", c["azp"])
			}
		}},
		{"OmitAZP", func(m *Misbehavior) { m.OmitAZP = true }, absent("azp")},
		{"WrongNonce", func(m *Misbehavior) { m.WrongNonce = true }, func(t *testing.T, c map[string]any, nonce, _ string, _ error) {
			if c["nonce"] == nonce || c["nonce"] == nil {
				t.Errorf("nonce %v", c["nonce"])
			}
		}},
		{"OmitNonce", func(m *Misbehavior) { m.OmitNonce = true }, absent("nonce")},
		{"OmitSub", func(m *Misbehavior) { m.OmitSub = true }, absent("sub")},
		{"OmitIat", func(m *Misbehavior) { m.OmitIat = true }, absent("iat")},
		{"OmitAtHash", func(m *Misbehavior) { m.OmitAtHash = true }, absent("at_hash")},
		{"BadAtHash", func(m *Misbehavior) { m.BadAtHash = true }, func(t *testing.T, c map[string]any, _, at string, _ error) {
			if c["at_hash"] == atHash(at) || c["at_hash"] == nil {
				t.Errorf("at_hash %v", c["at_hash"])
			}
		}},
		{"ExpiredIDToken", func(m *Misbehavior) { m.ExpiredIDToken = true }, func(t *testing.T, c map[string]any, _, _ string, _ error) {
			if int64(c["exp"].(float64)) >= time.Now().Unix() {
				t.Errorf("exp %v not in the past", c["exp"])
			}
		}},
		{"SignWithUnknownKey", func(m *Misbehavior) { m.SignWithUnknownKey = true }, func(t *testing.T, c map[string]any, _, _ string, verr error) {
			if verr == nil {
				t.Error("verified")
			}
		}},
		{"AlgNone", func(m *Misbehavior) { m.AlgNone = true }, func(t *testing.T, c map[string]any, _, _ string, verr error) {
			if verr == nil {
				t.Error("verified")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.op.Reset()
			e.op.Misbehave(tc.set)
			a := &authReq{}
			tok := e.login(a)
			idt := tok["id_token"].(string)
			_, _, verr := e.verify(idt)
			c := claimsUnverified(t, idt)
			tc.check(t, c, a.nonce, tok["access_token"].(string), verr)
			if tc.name == "AlgNone" {
				hdr, _ := jose.ParseSignedCompact(idt, []jose.SignatureAlgorithm{jose.RS256})
				if hdr != nil {
					t.Error("alg none parsed as RS256")
				}
			}
			if verr != nil && tc.name != "SignWithUnknownKey" && tc.name != "AlgNone" {
				t.Errorf("signature: %v", verr)
			}
		})
	}
	// Reset restores correct tokens.
	e.op.Reset()
	a := &authReq{}
	tok := e.login(a)
	c, _, err := e.verify(tok["id_token"].(string))
	if err != nil || c["nonce"] != a.nonce || c["iss"] != e.op.Issuer() {
		t.Fatalf("after Reset: %v %v", c, err)
	}
}

func absent(claim string) func(*testing.T, map[string]any, string, string, error) {
	return func(t *testing.T, c map[string]any, _, _ string, _ error) {
		if _, ok := c[claim]; ok {
			t.Errorf("%s present: %v", claim, c[claim])
		}
	}
}

func TestRefreshMisbehaviour(t *testing.T) {
	e := newEnv(t, Config{}, "")
	tok := e.login(&authReq{})
	rt := tok["refresh_token"].(string)

	step := func(set func(*Misbehavior)) (int, map[string]any) {
		e.op.Reset()
		e.op.Misbehave(set)
		return e.refresh(rt)
	}
	st, r := step(func(m *Misbehavior) { m.RefreshIDTokenSub = "mallory" })
	if st != 200 || claimsUnverified(t, r["id_token"].(string))["sub"] != "mallory" {
		t.Fatalf("RefreshIDTokenSub: %d %v", st, r)
	}
	rt = r["refresh_token"].(string)
	st, r = step(func(m *Misbehavior) { m.RefreshIDTokenIssuer = "https://evil.example" })
	if st != 200 || claimsUnverified(t, r["id_token"].(string))["iss"] != "https://evil.example" {
		t.Fatalf("RefreshIDTokenIssuer: %d %v", st, r)
	}
	rt = r["refresh_token"].(string)
	st, r = step(func(m *Misbehavior) { m.RefreshOmitIDToken = true })
	if _, ok := r["id_token"]; st != 200 || ok {
		t.Fatalf("RefreshOmitIDToken: %d %v", st, r)
	}
	rt = r["refresh_token"].(string)
	st, r = step(func(m *Misbehavior) { m.RefreshNoRotate = true })
	if _, ok := r["refresh_token"]; st != 200 || ok || !e.op.RefreshTokenValid(rt) {
		t.Fatalf("RefreshNoRotate: %d %v", st, r)
	}
	st, r = step(func(m *Misbehavior) { m.TokenError = "invalid_grant" })
	if st != 400 || r["error"] != "invalid_grant" || !e.op.RefreshTokenValid(rt) {
		t.Fatalf("TokenError: %d %v", st, r)
	}
	for _, status := range []int{500, 503} {
		st, r = step(func(m *Misbehavior) { m.TokenStatus = status })
		if st != status || r["error"] == nil || !e.op.RefreshTokenValid(rt) {
			t.Fatalf("TokenStatus: %d %v", st, r)
		}
	}
	st, r = step(func(m *Misbehavior) { m.AccessTokenTTL = 90 * time.Second })
	if st != 200 || r["expires_in"] != float64(90) {
		t.Fatalf("AccessTokenTTL: %d %v", st, r)
	}
	rt = r["refresh_token"].(string)
	st, r = step(func(m *Misbehavior) { m.NoRefreshToken = true })
	if _, ok := r["refresh_token"]; st != 200 || ok {
		t.Fatalf("NoRefreshToken: %d %v", st, r)
	}
	e.op.Reset()
	tok = e.login(&authReq{})
	if tok["refresh_token"] == nil {
		t.Fatal("no refresh token after Reset")
	}
	e.op.Misbehave(func(m *Misbehavior) { m.NoRefreshToken = true })
	if tok = e.login(&authReq{}); tok["refresh_token"] != nil {
		t.Fatal("NoRefreshToken at login")
	}
}

func TestDiscoveryMisbehaviour(t *testing.T) {
	e := newEnv(t, Config{}, "")
	e.op.Misbehave(func(m *Misbehavior) {
		m.NoS256, m.NoRevocation, m.NoEndSession, m.NoUserinfo, m.NoIssParamSupport = true, true, true, true, true
		m.NoClaimsParameter = true
	})
	_, d := e.getJSON("/.well-known/openid-configuration")
	if d["claims_parameter_supported"] != false {
		t.Error("claims parameter support advertised")
	}
	for _, k := range []string{"code_challenge_methods_supported", "revocation_endpoint", "end_session_endpoint", "userinfo_endpoint"} {
		if _, ok := d[k]; ok {
			t.Errorf("%s present", k)
		}
	}
	if d["authorization_response_iss_parameter_supported"] != false {
		t.Error("iss parameter support advertised")
	}
	// Without S256 advertised, PKCE is optional; without iss support, no iss.
	a := &authReq{noPKCE: true}
	q := e.authorize(a)
	if q.Has("iss") || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	if st, er := e.exchange(q.Get("code"), ""); st != 200 {
		t.Fatalf("exchange without PKCE: %d %v", st, er)
	}

	e.op.Reset()
	e.op.Misbehave(func(m *Misbehavior) { m.IssParam = "https://evil.example" })
	if q := e.authorize(&authReq{}); q.Get("iss") != "https://evil.example" {
		t.Errorf("IssParam value: %v", q)
	}
	e.op.Misbehave(func(m *Misbehavior) { m.IssParam = "-" })
	if q := e.authorize(&authReq{}); q.Has("iss") {
		t.Errorf("IssParam omit: %v", q)
	}

	e.op.Reset()
	e.op.Misbehave(func(m *Misbehavior) { m.DiscoveryDown = true })
	if st, _ := e.getJSON("/.well-known/openid-configuration"); st != 503 {
		t.Errorf("DiscoveryDown: %d", st)
	}
}

func TestGarbageAndHugeBodies(t *testing.T) {
	e := newEnv(t, Config{}, "")
	tok := e.login(&authReq{})
	e.op.Misbehave(func(m *Misbehavior) { m.GarbageJSON = true })
	var v any
	for _, path := range []string{"/.well-known/openid-configuration", "/userinfo"} {
		req, _ := http.NewRequest("GET", e.op.Endpoint(path), nil)
		req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
		resp, err := e.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Unmarshal(body, &v) == nil {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("POST", e.op.Endpoint("/token"), strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bff-client", "bff-secret")
	resp, err := e.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if json.Unmarshal(body, &v) == nil {
		t.Errorf("token: JSON %q", body)
	}

	e.op.Reset()
	e.op.Misbehave(func(m *Misbehavior) { m.HugeBody = true })
	req, _ = http.NewRequest("POST", e.op.Endpoint("/token"), strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bff-client", "bff-secret")
	resp, err = e.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n < hugeBodySize {
		t.Errorf("huge body: %d bytes", n)
	}
	if !e.op.RefreshTokenValid(tok["refresh_token"].(string)) {
		t.Error("garbage answers consumed the refresh token")
	}
}

func TestUnparseableJWKAndUserinfoSub(t *testing.T) {
	e := newEnv(t, Config{}, "")
	e.op.Misbehave(func(m *Misbehavior) { m.UnparseableJWK = true; m.UserinfoSub = "someone-else" })
	resp, err := e.c.Get(e.op.Endpoint("/jwks"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err == nil {
		t.Fatal("go-jose parsed the key set; want an error from the secp256k1 key")
	}
	if !strings.Contains(string(body), `"crv":"secp256k1"`) {
		t.Fatal("no secp256k1 key")
	}
	tok := e.login(&authReq{})
	if _, _, err := e.verify(tok["id_token"].(string)); err != nil {
		t.Fatalf("usable key: %v", err)
	}
	if _, ui := e.userinfo(tok["access_token"].(string)); ui["sub"] != "someone-else" {
		t.Errorf("UserinfoSub: %v", ui)
	}
}
