package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clientJWKS serves keys as a client's jwks_uri.
func clientJWKS(t *testing.T, keys ...jose.JSONWebKey) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// assertion signs a client assertion; mutate may change the claims.
func assertion(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func TestPrivateKeyJWT(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e := newEnv(t, Config{}, "/idp")
	e.op.SetClientJWKSURI(clientJWKS(t,
		jose.JSONWebKey{Key: ec.Public(), KeyID: "ec", Algorithm: "ES256", Use: "sig"},
		jose.JSONWebKey{Key: rk.Public(), KeyID: "rsa", Algorithm: "RS256", Use: "sig"}))
	_, d := e.getJSON("/.well-known/openid-configuration")
	if !slices.Contains(toStrings(d["token_endpoint_auth_methods_supported"]), AuthPrivateKeyJWT) ||
		!slices.Contains(toStrings(d["token_endpoint_auth_signing_alg_values_supported"]), "ES256") {
		t.Fatalf("discovery: %v %v", d["token_endpoint_auth_methods_supported"], d["token_endpoint_auth_signing_alg_values_supported"])
	}
	claims := func(mutate func(map[string]any)) map[string]any {
		c := map[string]any{"iss": e.op.ClientID(), "sub": e.op.ClientID(), "aud": e.op.Endpoint("/token"),
			"jti": rand.Text(), "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	introspect := func(a string) int {
		st, _ := e.post("/introspect", url.Values{"client_id": {e.op.ClientID()}, "token": {"x"},
			"client_assertion_type": {JWTBearer}, "client_assertion": {a}})
		return st
	}
	good := assertion(t, ec, jose.ES256, "ec", claims(nil))
	if st := introspect(good); st != 200 {
		t.Fatalf("ES256 assertion: %d", st)
	}
	if st := introspect(good); st != 401 {
		t.Errorf("replayed jti: %d, want 401", st)
	}
	if st := introspect(assertion(t, rk, jose.RS256, "rsa", claims(nil))); st != 200 {
		t.Errorf("RS256 assertion: %d", st)
	}
	if st := introspect(assertion(t, ec, jose.ES256, "", claims(func(c map[string]any) { c["aud"] = e.op.Issuer() }))); st != 200 {
		t.Errorf("aud issuer, no kid: %d", st)
	}
	if n := e.op.ClientAuths()["introspect "+AuthPrivateKeyJWT]; n != 3 {
		t.Errorf("ClientAuths = %v", e.op.ClientAuths())
	}
	for name, a := range map[string]string{
		"unknown_key": assertion(t, other, jose.ES256, "ec", claims(nil)),
		"wrong_aud":   assertion(t, ec, jose.ES256, "ec", claims(func(c map[string]any) { c["aud"] = "https://other.example/token" })),
		"wrong_iss":   assertion(t, ec, jose.ES256, "ec", claims(func(c map[string]any) { c["iss"] = "someone" })),
		"expired":     assertion(t, ec, jose.ES256, "ec", claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })),
		"far_exp":     assertion(t, ec, jose.ES256, "ec", claims(func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() })),
		"no_jti":      assertion(t, ec, jose.ES256, "ec", claims(func(c map[string]any) { delete(c, "jti") })),
		"garbage":     "not.a.jwt",
	} {
		t.Run(name, func(t *testing.T) {
			if st := introspect(a); st != 401 {
				t.Errorf("%d, want 401", st)
			}
		})
	}

	t.Run("strict_audience", func(t *testing.T) {
		e := newEnv(t, Config{AssertionAudience: AudienceIssuer}, "")
		e.op.SetClientJWKSURI(clientJWKS(t, jose.JSONWebKey{Key: ec.Public(), KeyID: "ec", Algorithm: "ES256"}))
		for aud, want := range map[string]int{e.op.Endpoint("/token"): 401, e.op.Issuer(): 200} {
			a := assertion(t, ec, jose.ES256, "ec", map[string]any{"iss": e.op.ClientID(), "sub": e.op.ClientID(),
				"aud": aud, "jti": rand.Text(), "exp": time.Now().Add(time.Minute).Unix()})
			st, _ := e.post("/introspect", url.Values{"client_id": {e.op.ClientID()}, "token": {"x"},
				"client_assertion_type": {JWTBearer}, "client_assertion": {a}})
			if st != want {
				t.Errorf("aud %s: %d, want %d", aud, st, want)
			}
		}
	})
}

func TestTokenAuthMethodsNarrowed(t *testing.T) {
	e := newEnv(t, Config{TokenAuthMethods: []string{AuthSecretPost}}, "")
	_, d := e.getJSON("/.well-known/openid-configuration")
	if got := toStrings(d["token_endpoint_auth_methods_supported"]); !slices.Equal(got, []string{AuthSecretPost}) {
		t.Fatalf("advertised %v", got)
	}
	if st, _ := e.post("/introspect", url.Values{"token": {"x"}}); st != 401 {
		t.Errorf("client_secret_basic: %d, want 401", st)
	}
	st, _ := e.post("/introspect", url.Values{"token": {"x"}, "client_id": {e.op.ClientID()}, "client_secret": {e.op.ClientSecret()}})
	if st != 200 || e.op.ClientAuths()["introspect "+AuthSecretPost] != 1 {
		t.Errorf("client_secret_post: %d %v", st, e.op.ClientAuths())
	}
	if !strings.Contains(strings.Join(toStrings(d["revocation_endpoint_auth_methods_supported"]), " "), AuthSecretPost) {
		t.Errorf("revocation methods %v", d["revocation_endpoint_auth_methods_supported"])
	}
}
