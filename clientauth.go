package bff

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"golang.org/x/oauth2"
)

// AssertionAudience is the aud of private_key_jwt client assertions
// (Options.ClientAssertionAudience).
type AssertionAudience int

const (
	// AudienceTokenEndpoint: the token endpoint's URL, as OpenID Connect
	// Core 1.0 §9 says (Entra ID, Okta, Keycloak, most providers).
	AudienceTokenEndpoint AssertionAudience = iota
	// AudienceIssuer: the provider's issuer identifier, as RFC 7523bis,
	// FAPI 2.0 and some providers (Auth0, ID-porten) require.
	AudienceIssuer
)

// Client authentication methods (OIDC Core §9).
const (
	authSecretBasic   = "client_secret_basic"
	authSecretPost    = "client_secret_post"
	authPrivateKeyJWT = "private_key_jwt"
)

// jwtBearer is the client_assertion_type of private_key_jwt (RFC 7523).
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLife is how long a client assertion is valid: one request's
// worth, so that a captured assertion is of little use (and each carries a
// fresh jti the provider remembers until then).
const assertionLife = time.Minute

// clientKeys are Options.ClientKeys, ready to sign and to publish.
type clientKeys struct {
	signer crypto.Signer // the first key
	alg    jose.SignatureAlgorithm
	kid    string // RFC 7638 thumbprint of the first key
	jwks   []byte // the public keys, as served at Prefix+"/jwks"
	// header holds the first key's certificate thumbprints, x5t and
	// x5t#S256 (Options.ClientCertificate), or nothing.
	header map[jose.HeaderKey]string
}

// newClientKeys checks the keys and computes their public key set and the
// thumbprints of the first key's certificate, if any.
func newClientKeys(signers []crypto.Signer, cert *x509.Certificate) (*clientKeys, error) {
	ck := &clientKeys{header: map[jose.HeaderKey]string{}}
	if cert != nil {
		// SHA-1 only names the certificate (Entra ID requires x5t); no
		// signature depends on it.
		s1, s256 := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
		ck.header["x5t"] = base64.RawURLEncoding.EncodeToString(s1[:])
		ck.header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(s256[:])
	}
	set := jose.JSONWebKeySet{}
	for i, s := range signers {
		if s == nil {
			return nil, fieldErr("ClientKeys", "key %d is nil", i)
		}
		alg, err := keyAlg(s.Public())
		if err != nil {
			return nil, fieldErr("ClientKeys", "key %d: %v", i, err)
		}
		jwk := jose.JSONWebKey{Key: s.Public(), Algorithm: string(alg), Use: "sig"}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fieldErr("ClientKeys", "key %d: %v", i, err)
		}
		jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
		if i == 0 {
			ck.signer, ck.alg, ck.kid = s, alg, jwk.KeyID
		}
		set.Keys = append(set.Keys, jwk)
	}
	ck.jwks, _ = json.Marshal(set)
	return ck, nil
}

// certifiesFirstKey reports whether cert's public key is keys[0]'s.
func certifiesFirstKey(cert *x509.Certificate, keys []crypto.Signer) bool {
	if len(keys) == 0 || keys[0] == nil {
		return false
	}
	pub, ok := keys[0].Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// keyAlg is the signature algorithm of a public key: ES256/384/512 by
// curve, RS256 for RSA (2048 bits or more), EdDSA for Ed25519.
func keyAlg(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
		return "", errors.New("an EC key must be on P-256, P-384 or P-521")
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", errors.New("an RSA key must have at least 2048 bits")
		}
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T (want ECDSA, RSA or Ed25519)", pub)
}

// clientAuth is how this client authenticates at the provider's token,
// PAR and revocation endpoints, chosen at discovery.
type clientAuth struct {
	method string
	aud    string      // private_key_jwt: the assertions' audience
	signer jose.Signer // private_key_jwt
}

// chooseClientAuth picks the method Options ask for among those the
// provider lists (token_endpoint_auth_methods_supported; absent means
// client_secret_basic, OIDC Discovery §3): private_key_jwt with ClientKeys,
// else client_secret_basic, else client_secret_post. A provider that lists
// none of them does not fit Options.
func (b *BFF) chooseClientAuth(methods, algs []string, tokenURL string) (clientAuth, error) {
	if len(methods) == 0 {
		methods = []string{authSecretBasic}
	}
	if b.keys == nil {
		switch {
		case slices.Contains(methods, authSecretBasic):
			return clientAuth{method: authSecretBasic}, nil
		case slices.Contains(methods, authSecretPost):
			return clientAuth{method: authSecretPost}, nil
		}
		return clientAuth{}, configErr("the provider accepts neither client_secret_basic nor client_secret_post (token_endpoint_auth_methods_supported: %v): set Options.ClientKeys for private_key_jwt", methods)
	}
	if !slices.Contains(methods, authPrivateKeyJWT) {
		return clientAuth{}, configErr("the provider does not accept private_key_jwt (token_endpoint_auth_methods_supported: %v): allow it for this provider, or use Options.ClientSecret instead of ClientKeys", methods)
	}
	if len(algs) > 0 && !slices.Contains(algs, string(b.keys.alg)) {
		return clientAuth{}, configErr("the provider does not accept %s client assertions (token_endpoint_auth_signing_alg_values_supported: %v): give Options.ClientKeys a key of another type first", b.keys.alg, algs)
	}
	aud := tokenURL
	if b.cfg.ClientAssertionAudience == AudienceIssuer {
		aud = b.cfg.Issuer
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), b.keys.kid)
	for k, v := range b.keys.header {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: b.keys.alg, Key: cryptosigner.Opaque(b.keys.signer)}, opts)
	if err != nil {
		return clientAuth{}, configErr("Options.ClientKeys: %v", err)
	}
	return clientAuth{method: authPrivateKeyJWT, aud: aud, signer: signer}, nil
}

// authStyle is how x/oauth2 sends the client's credentials to the token
// endpoint. Choosing it avoids x/oauth2's auto-detection, which retries
// every failed token request with the other style. With private_key_jwt,
// x/oauth2 sends only client_id in the body, and tokenTransport adds the
// assertion.
func (a clientAuth) authStyle() oauth2.AuthStyle {
	if a.method == authSecretBasic {
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleInParams
}

// assertion signs a new client assertion (RFC 7523 §3): iss and sub the
// client ID, aud the provider, a fresh jti, and a short life.
func (b *BFF) assertion(a clientAuth) (string, error) {
	now := b.cfg.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": b.cfg.ClientID, "sub": b.cfg.ClientID, "aud": a.aud, "jti": rand.Text(),
		"iat": now.Unix(), "exp": now.Add(assertionLife).Unix(),
	})
	jws, err := a.signer.Sign(claims)
	if err != nil {
		return "", fmt.Errorf("signing the client assertion: %w", err)
	}
	return jws.CompactSerialize()
}

// credentials authenticates a request to the provider: it adds the client's
// credentials to form (client_secret_post, private_key_jwt), or returns the
// Authorization header to send (client_secret_basic).
func (b *BFF) credentials(prov *provider, form url.Values) (authorization string, err error) {
	switch a := prov.x.auth; a.method {
	case authSecretBasic:
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(b.cfg.ClientID)+":"+url.QueryEscape(b.cfg.ClientSecret))), nil
	case authSecretPost:
		form.Set("client_id", b.cfg.ClientID)
		form.Set("client_secret", b.cfg.ClientSecret)
	default:
		assertion, err := b.assertion(a)
		if err != nil {
			return "", err
		}
		form.Set("client_id", b.cfg.ClientID)
		form.Set("client_assertion_type", jwtBearer)
		form.Set("client_assertion", assertion)
	}
	return "", nil
}

// tokenContext makes x/oauth2 call the token endpoint with the provider's
// token client (which adds private_key_jwt assertions).
func (b *BFF) tokenContext(ctx context.Context, prov *provider) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, prov.x.tokenClient)
}

// tokenClient is the bounded client, which with private_key_jwt adds a
// fresh client assertion to every request to the token endpoint.
func (b *BFF) tokenClient(a clientAuth, tokenURL string) *http.Client {
	if a.method != authPrivateKeyJWT {
		return b.client
	}
	if u, err := url.Parse(tokenURL); err == nil {
		tokenURL = u.String() // as the request's URL will print
	}
	c := *b.client
	c.Transport = &tokenTransport{base: b.client.Transport, b: b, auth: a, tokenURL: tokenURL}
	return &c
}

// tokenTransport adds a client assertion to the form body of POSTs to the
// token endpoint: x/oauth2 builds the token requests (code exchange,
// refresh) and parses the answers, but has no hook for client assertions.
// Requests to any other URL (a redirect) go out without one.
type tokenTransport struct {
	base     http.RoundTripper
	b        *BFF
	auth     clientAuth
	tokenURL string
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.URL.String() != t.tokenURL || req.Body == nil {
		return t.base.RoundTrip(req)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("token request body: %w", err)
	}
	assertion, err := t.b.assertion(t.auth)
	if err != nil {
		return nil, err
	}
	form.Set("client_assertion_type", jwtBearer)
	form.Set("client_assertion", assertion)
	enc := form.Encode()
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(strings.NewReader(enc))
	out.ContentLength = int64(len(enc))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(enc)), nil }
	return t.base.RoundTrip(out)
}

// handleJWKS publishes the public keys of Options.ClientKeys, for
// providers that fetch the client's jwks_uri (register
// BaseURL+Prefix+"/jwks"). Each key's kid is its RFC 7638 thumbprint.
func (b *BFF) handleJWKS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	// Cacheable, but briefly: a provider sees a new key within 10 minutes
	// (rotate by adding the new key last, then, after that, first).
	h.Set("Cache-Control", "public, max-age=600")
	w.Write(b.keys.jwks)
}
