package bff

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/testsupport"
)

// testClientKey generates a client key: "ES256" (P-256), "RS256" (RSA
// 2048), or, for refusals, "RSA1024" and "P224".
func testClientKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "P224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "RSA1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyApp is an app that authenticates with private_key_jwt: no secret,
// keys, and the provider fetching the app's /auth/jwks as the client's
// jwks_uri.
func keyApp(t *testing.T, op *oidctest.Provider, keys []crypto.Signer, opt func(*Options)) *app {
	t.Helper()
	a := newUnreadyApp(t, op, func(o *Options) {
		o.ClientSecret, o.ClientKeys = "", keys
		if opt != nil {
			opt(o)
		}
	})
	op.SetClientJWKSURI(a.URL + "/auth/jwks")
	return a
}

// With ClientKeys and no secret, every call that authenticates the client
// (code exchange, refresh, PAR, revocation) uses private_key_jwt, with the
// provider verifying against the app's published keys; ES256 and RS256.
func TestPrivateKeyJWT(t *testing.T) {
	for _, kind := range []string{"ES256", "RS256"} {
		t.Run(kind, func(t *testing.T) {
			clock := &offsetClock{}
			a := keyApp(t, testOP(t, oidctest.Config{Now: clock.Now, PAR: true, AccessTokenTTL: 2 * time.Minute,
				TokenAuthMethods: []string{oidctest.AuthPrivateKeyJWT}}), []crypto.Signer{testClientKey(t, kind)}, func(o *Options) { o.Now = clock.Now })
			waitReady(t, a)
			br := a.signIn(t)
			clock.Advance(90 * time.Second) // within the skew: the next request refreshes
			a.expect(t, br, "/api/me", 200, "after expiry")
			if a.op.RefreshGrants() != 1 {
				t.Fatalf("refresh grants = %d, want 1", a.op.RefreshGrants())
			}
			a.logout(br).Body.Close()
			want := map[string]int{"par private_key_jwt": 1, "token private_key_jwt": 2, "revoke private_key_jwt": 1}
			if got := a.op.ClientAuths(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("client authentications = %v, want %v", got, want)
			}
			if a.op.ClientJWKSFetches() == 0 {
				t.Error("the provider never fetched /auth/jwks")
			}
		})
	}
}

// rfc7638 computes an EC P-256 key's thumbprint as RFC 7638 §3 spells it,
// independently of go-jose.
func rfc7638(k *ecdsa.PublicKey) string {
	b64 := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + b64(k.X) + `","y":"` + b64(k.Y) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// GET /auth/jwks publishes the public keys only, every key (the first
// signs), with RFC 7638 thumbprints as kid, cacheable; without ClientKeys
// the route does not exist.
func TestClientJWKSRoute(t *testing.T) {
	op := testOP(t, oidctest.Config{TokenAuthMethods: []string{oidctest.AuthPrivateKeyJWT}})
	first, second := testClientKey(t, "ES256").(*ecdsa.PrivateKey), testClientKey(t, "ES256").(*ecdsa.PrivateKey)
	a := keyApp(t, op, []crypto.Signer{first, second}, nil)
	waitReady(t, a)
	resp := newBrowser(t).Get(a.URL + "/auth/jwks")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" ||
		!strings.HasPrefix(resp.Header.Get("Cache-Control"), "public, max-age=") {
		t.Fatalf("GET /auth/jwks = %d %v", resp.StatusCode, resp.Header)
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal([]byte(resp.Body), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("key set %s: %v", resp.Body, err)
	}
	for i, k := range []*ecdsa.PrivateKey{first, second} {
		got := set.Keys[i]
		if got["kid"] != rfc7638(&k.PublicKey) || got["alg"] != "ES256" || got["use"] != "sig" || got["d"] != nil {
			t.Errorf("key %d = %v, want kid %s, ES256, sig, no private part", i, got, rfc7638(&k.PublicKey))
		}
	}
	a.login(newBrowser(t)) // signed by the first key, found by its kid

	plain := newApp(t, testOP(t, oidctest.Config{}), nil)
	plain.expect(t, newBrowser(t), "/auth/jwks", 404, "without ClientKeys")
}

// The method follows token_endpoint_auth_methods_supported: one that
// Options cannot do is a misconfiguration at discovery (500, an Error log
// that says what to do), never a mystery 401 at the first sign-in.
func TestClientAuthMethodFromDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		methods []string
		algs    []string
		keys    bool
		log     string
	}{
		{"keys_provider_without_private_key_jwt", []string{oidctest.AuthSecretBasic}, nil, true, "does not accept private_key_jwt"},
		{"secret_provider_only_private_key_jwt", []string{oidctest.AuthPrivateKeyJWT}, nil, false, "accepts neither client_secret_basic nor client_secret_post"},
		{"es256_key_provider_only_rs256", []string{oidctest.AuthPrivateKeyJWT}, []string{"RS256"}, true, "does not accept ES256 client assertions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := testOP(t, oidctest.Config{TokenAuthMethods: tc.methods, AssertionAlgs: tc.algs})
			var logs logBuffer
			opt := func(o *Options) { o.Logger = logs.Logger() }
			var a *app
			if tc.keys {
				a = keyApp(t, op, []crypto.Signer{testClientKey(t, "ES256")}, opt)
			} else {
				a = newUnreadyApp(t, op, opt)
			}
			br := newBrowser(t)
			testsupport.WaitUntil(t, 10*time.Second, "the misconfiguration", func() bool {
				code, _ := a.status(br, "GET", "/auth/login")
				return code == http.StatusInternalServerError
			})
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log lacks an Error with %q:\n%s", tc.log, logs.String())
			}
			if n := op.CodeGrants(); n != 0 {
				t.Errorf("code grants = %d", n)
			}
		})
	}
	t.Run("secret_provider_only_post", func(t *testing.T) {
		a := newApp(t, testOP(t, oidctest.Config{TokenAuthMethods: []string{oidctest.AuthSecretPost}}), nil)
		br := a.signIn(t)
		a.logout(br).Body.Close()
		want := map[string]int{"token client_secret_post": 1, "revoke client_secret_post": 1}
		if got := a.op.ClientAuths(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client authentications = %v, want %v", got, want)
		}
	})
}

// The assertion's aud is the token endpoint's URL, or the issuer with
// AudienceIssuer: each works with a provider that accepts only that one.
func TestClientAssertionAudience(t *testing.T) {
	for _, tc := range []struct {
		name     string
		audience AssertionAudience
		issuer   bool // the provider accepts only the issuer (else only the token endpoint)
		ok       bool
	}{
		{"token_endpoint", AudienceTokenEndpoint, false, true},
		{"issuer", AudienceIssuer, true, true},
		{"token_endpoint_to_issuer_only_provider", AudienceTokenEndpoint, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			only := oidctest.AudienceTokenEndpoint
			if tc.issuer {
				only = oidctest.AudienceIssuer
			}
			a := keyApp(t, testOP(t, oidctest.Config{TokenAuthMethods: []string{oidctest.AuthPrivateKeyJWT}, AssertionAudience: only}), []crypto.Signer{testClientKey(t, "ES256")}, func(o *Options) { o.ClientAssertionAudience = tc.audience })
			waitReady(t, a)
			resp, _ := newBrowser(t).follow(a.URL + "/auth/login?returnTo=/app")
			if ok := resp.StatusCode == 200; ok != tc.ok {
				t.Fatalf("sign-in ended with %d, want success %v", resp.StatusCode, tc.ok)
			}
		})
	}
}

// Entra ID's certificate credentials: the provider knows the client's
// certificate, not a jwks_uri, and refuses assertions without its x5t.
// With ClientCertificate every assertion carries x5t (and x5t#S256):
// sign-in, refresh and sign-out work; without it the sign-in is refused.
func TestClientCertificateX5t(t *testing.T) {
	key := testClientKey(t, "RS256")
	cert, err := oidctest.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	entra := func(t *testing.T, withCert bool) (*oidctest.Provider, *app, *offsetClock) {
		clock := &offsetClock{}
		op := testOP(t, oidctest.Config{Profile: oidctest.EntraID, ClientCertificate: cert, Now: clock.Now,
			AccessTokenTTL: 2 * time.Minute})
		op.SetIssuer(op.Issuer() + oidctest.EntraID.IssuerPath)
		a := newApp(t, op, func(o *Options) {
			o.ClientSecret, o.ClientKeys, o.Now = "", []crypto.Signer{key}, clock.Now
			o.DisableConsentPrompt, o.InsecureAllowNoPKCE = true, true
			if withCert {
				o.ClientCertificate = cert
			}
		})
		return op, a, clock
	}
	t.Run("with certificate", func(t *testing.T) {
		op, a, clock := entra(t, true)
		br := a.signIn(t)
		clock.Advance(90 * time.Second)
		if !signedIn(t, a, br) || op.RefreshGrants() != 1 {
			t.Fatalf("refresh grants %d", op.RefreshGrants())
		}
		a.logout(br)
		if got := op.ClientAuths()["token private_key_jwt"]; got != 2 || op.ClientJWKSFetches() != 0 {
			t.Errorf("token authentications %v, jwks fetches %d", op.ClientAuths(), op.ClientJWKSFetches())
		}
		hdr := assertionHeader(t, a)
		s1, s256 := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
		if hdr["x5t"] != base64.RawURLEncoding.EncodeToString(s1[:]) ||
			hdr["x5t#S256"] != base64.RawURLEncoding.EncodeToString(s256[:]) {
			t.Errorf("assertion header %v", hdr)
		}
	})
	t.Run("without certificate", func(t *testing.T) {
		op, a, _ := entra(t, false)
		resp, body := newBrowser(t).follow(a.URL + "/auth/login?returnTo=/app")
		if resp.StatusCode != http.StatusBadRequest || op.ClientAuths()["token private_key_jwt"] != 0 {
			t.Fatalf("sign-in without x5t: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("certificate of another key", func(t *testing.T) {
		_, err := New(Options{Issuer: "https://idp.example", ClientID: "c", BaseURL: "https://app.example",
			ClientKeys: []crypto.Signer{testClientKey(t, "ES256")}, ClientCertificate: cert})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "ClientCertificate" {
			t.Fatalf("New = %v, want a ConfigError for ClientCertificate", err)
		}
	})
}

// assertionHeader is the JWS header of a client assertion the app makes
// now.
func assertionHeader(t *testing.T, a *app) map[string]any {
	t.Helper()
	jwt, err := a.bff.assertion(a.bff.provider().x.auth)
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(jwtPart(t, jwt, 0), &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr
}
