package oidctest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Each profile's discovery document lacks exactly the members it says,
// and names the issuer as the provider does (template, trailing slash).
func TestProfileDiscovery(t *testing.T) {
	for _, prof := range Profiles {
		t.Run(prof.Name, func(t *testing.T) {
			e := newEnv(t, Config{Profile: prof}, prof.IssuerPath)
			_, d := e.getJSON("/.well-known/openid-configuration")
			for member, lacks := range map[string]bool{
				"code_challenge_methods_supported":               prof.NoPKCEAdvertised,
				"revocation_endpoint":                            prof.NoRevocation,
				"end_session_endpoint":                           prof.NoEndSession,
				"backchannel_logout_supported":                   prof.NoBackchannel,
				"authorization_response_iss_parameter_supported": prof.NoIssParam,
				"pushed_authorization_request_endpoint":          !prof.PAR,
			} {
				if _, has := d[member]; has == lacks {
					t.Errorf("%s present = %v, want %v", member, has, !lacks)
				}
			}
			iss := e.srv.URL + prof.IssuerPath
			switch {
			case prof.TenantTemplate:
				iss = e.srv.URL + "/" + TenantPlaceholder + "/v2.0"
			case prof.TrailingSlash:
				iss += "/"
			}
			if d["issuer"] != iss {
				t.Errorf("issuer = %v, want %s", d["issuer"], iss)
			}
		})
	}
}

// Google refuses offline_access, gives a refresh token only for
// access_type=offline, and does not rotate it.
func TestProfileGoogleRefreshRules(t *testing.T) {
	e := newEnv(t, Config{Profile: Google}, "")
	if q := e.authorize(&authReq{}); q.Get("error") != "invalid_scope" {
		t.Fatalf("offline_access: %v, want invalid_scope", q)
	}
	if tok := e.login(&authReq{scope: "openid email"}); tok["refresh_token"] != nil {
		t.Fatalf("refresh token without access_type=offline: %v", tok)
	}
	tok := e.login(&authReq{scope: "openid email", extra: url.Values{"access_type": {"offline"}}})
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token with access_type=offline: %v", tok)
	}
	st, ref := e.refresh(rt)
	if st != 200 || ref["refresh_token"] != nil || !e.op.RefreshTokenValid(rt) {
		t.Fatalf("refresh: %d %v; the old token valid = %v, want no rotation", st, ref, e.op.RefreshTokenValid(rt))
	}
}

// Entra ID's multi-tenant endpoint: a templated issuer in discovery, the
// real tenant in the ID token's iss and tid; no RFC 9207 iss parameter.
func TestProfileEntraTenant(t *testing.T) {
	e := newEnv(t, Config{Profile: EntraIDMultiTenant}, EntraIDMultiTenant.IssuerPath)
	a := &authReq{}
	if q := e.authorize(a); q.Has("iss") {
		t.Errorf("authorization response has iss %q", q.Get("iss"))
	}
	tok := e.login(&authReq{})
	c, _, err := e.verify(tok["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if want := e.srv.URL + "/" + EntraTenant + "/v2.0"; c["iss"] != want || c["tid"] != EntraTenant {
		t.Errorf("iss %v tid %v, want %s and %s", c["iss"], c["tid"], want, EntraTenant)
	}
}

// Auth0: an opaque access token unless the sign-in names an audience,
// then a JWT for it; the issuer ends with a slash.
func TestProfileAuth0Audience(t *testing.T) {
	e := newEnv(t, Config{Profile: Auth0}, "")
	if at := e.login(&authReq{})["access_token"].(string); strings.Count(at, ".") != 0 {
		t.Errorf("access token without audience is a JWT: %s", at)
	}
	tok := e.login(&authReq{extra: url.Values{"audience": {"https://api.example"}}})
	c, h, err := e.verify(tok["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c["aud"] != "https://api.example" || c["iss"] != e.srv.URL+"/" || h.ExtraHeaders["typ"] != "at+jwt" {
		t.Errorf("access token %v %v", c, h.ExtraHeaders)
	}
	if st, _ := e.userinfo(tok["access_token"].(string)); st != 200 {
		t.Errorf("userinfo with the JWT access token: %d", st)
	}
}

// Cognito's /logout at the origin's root: client_id and a registered
// logout_uri, back without state; anything else is refused.
func TestProfileCognitoLogout(t *testing.T) {
	e := newEnv(t, Config{Profile: Cognito, RedirectURIs: []string{testRedirect, "https://rp.example/bye"}},
		Cognito.IssuerPath)
	get := func(q url.Values) *http.Response {
		resp, err := e.c.Get(e.srv.URL + "/logout?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := get(url.Values{"client_id": {e.op.ClientID()}, "logout_uri": {"https://rp.example/bye"}})
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://rp.example/bye" {
		t.Fatalf("logout = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for name, q := range map[string]url.Values{
		"unregistered": {"client_id": {e.op.ClientID()}, "logout_uri": {"https://evil.example/"}},
		"other client": {"client_id": {"other"}, "logout_uri": {"https://rp.example/bye"}},
		"no uri":       {"client_id": {e.op.ClientID()}},
	} {
		if resp := get(q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, resp.StatusCode)
		}
	}
	if e.op.EndSessions() != 1 {
		t.Errorf("EndSessions = %d, want 1", e.op.EndSessions())
	}
}

// A client registered with a certificate (Entra ID) authenticates with
// assertions whose x5t is the certificate's SHA-1 thumbprint; a missing
// or wrong x5t is refused, and no jwks_uri is fetched.
func TestProfileClientCertificate(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(cert.Raw)
	e := newEnv(t, Config{Profile: EntraID, ClientCertificate: cert}, EntraID.IssuerPath)
	introspect := func(x5t string) int {
		opts := (&jose.SignerOptions{}).WithType("JWT")
		if x5t != "" {
			opts = opts.WithHeader("x5t", x5t)
		}
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
		claims, _ := json.Marshal(map[string]any{"iss": e.op.ClientID(), "sub": e.op.ClientID(),
			"aud": e.op.Endpoint("/token"), "jti": rand.Text(), "exp": time.Now().Add(time.Minute).Unix()})
		jws, _ := s.Sign(claims)
		a, _ := jws.CompactSerialize()
		st, _ := e.post("/introspect", url.Values{"client_id": {e.op.ClientID()}, "token": {"x"},
			"client_assertion_type": {JWTBearer}, "client_assertion": {a}})
		return st
	}
	for x5t, want := range map[string]int{base64.RawURLEncoding.EncodeToString(sum[:]): 200, "": 401,
		base64.RawURLEncoding.EncodeToString(make([]byte, 20)): 401} {
		if st := introspect(x5t); st != want {
			t.Errorf("x5t %q: %d, want %d", x5t, st, want)
		}
	}
	if e.op.ClientJWKSFetches() != 0 {
		t.Errorf("jwks_uri fetched %d times", e.op.ClientJWKSFetches())
	}
}
