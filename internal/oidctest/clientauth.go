package oidctest

import (
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Client authentication methods (OIDC Core §9).
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// JWTBearer is the client_assertion_type of private_key_jwt (RFC 7523).
const JWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs are the algorithms of client assertions the provider
// verifies, unless Config.AssertionAlgs narrows them.
var assertionAlgs = []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"}

// maxAssertionLife bounds how far in the future a client assertion's exp
// may be.
const maxAssertionLife = 10 * time.Minute

func (p *Provider) authMethods() []string {
	if len(p.cfg.TokenAuthMethods) > 0 {
		return p.cfg.TokenAuthMethods
	}
	return []string{AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT}
}

func (p *Provider) assertionAlgs() []string {
	if len(p.cfg.AssertionAlgs) > 0 {
		return p.cfg.AssertionAlgs
	}
	return assertionAlgs
}

// clientPOST reads a POSTed form from the client and authenticates it
// (authenticateClient); otherwise it writes the error and returns false.
func (p *Provider) clientPOST(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return false
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed body")
		return false
	}
	return p.authenticateClient(w, r)
}

// authenticateClient authenticates the client of a token, PAR, revocation
// or introspection request with one of the advertised methods, records the
// method used (ClientAuths), and writes a 401 invalid_client on failure.
// r.ParseForm must have been called.
func (p *Provider) authenticateClient(w http.ResponseWriter, r *http.Request) bool {
	method, err := p.clientCredentials(r)
	if err == nil && !slices.Contains(p.authMethods(), method) {
		err = fmt.Errorf("%s is not an allowed client authentication method", method)
	}
	if err != nil {
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="oidctest"`)
		}
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return false
	}
	p.mu.Lock()
	p.clientAuths[path.Base(r.URL.Path)+" "+method]++
	p.mu.Unlock()
	return true
}

// clientCredentials checks the request's client credentials and returns
// the method they used.
func (p *Provider) clientCredentials(r *http.Request) (string, error) {
	form := r.PostForm
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		if _, _, basic := r.BasicAuth(); basic || form.Has("client_secret") {
			return "", errors.New("several client authentication methods")
		}
		return AuthPrivateKeyJWT, p.verifyAssertion(r)
	}
	id, secret, basic := r.BasicAuth()
	method := AuthSecretBasic
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			id, secret = "", ""
		}
		if pid := form.Get("client_id"); pid != "" && pid != id {
			id = ""
		}
	} else {
		id, secret, method = form.Get("client_id"), form.Get("client_secret"), AuthSecretPost
	}
	okID := subtle.ConstantTimeCompare([]byte(id), []byte(p.cfg.ClientID)) == 1
	okSecret := subtle.ConstantTimeCompare([]byte(secret), []byte(p.cfg.ClientSecret)) == 1
	if !okID || !okSecret || secret == "" {
		return "", errors.New("wrong client ID or secret")
	}
	return method, nil
}

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523 §3,
// OIDC Core §9): signed by a key of the client's JWKS with an allowed
// algorithm; iss and sub the client ID; aud this provider; exp in the
// (near) future; jti never seen before.
func (p *Provider) verifyAssertion(r *http.Request) error {
	form := r.PostForm
	if form.Get("client_assertion_type") != JWTBearer {
		return errors.New("unsupported client_assertion_type")
	}
	var algs []jose.SignatureAlgorithm
	for _, a := range p.assertionAlgs() {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	jws, err := jose.ParseSignedCompact(form.Get("client_assertion"), algs)
	if err != nil {
		return fmt.Errorf("client assertion: %w", err)
	}
	candidates, err := p.assertionKeys(r.Context(), jws.Signatures[0].Header)
	if err != nil {
		return err
	}
	var payload []byte
	for _, k := range candidates {
		if payload, err = jws.Verify(k.Key); err == nil {
			break
		}
	}
	if payload == nil {
		return errors.New("client assertion: no key of the client verifies it")
	}
	var c struct {
		Iss, Sub, Jti string
		Aud           audience
		Exp, Iat      *int64
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("client assertion claims: %w", err)
	}
	return p.checkAssertionClaims(r, c.Iss, c.Sub, c.Jti, c.Aud, c.Exp)
}

// assertionKeys are the keys that may verify a client assertion with
// header h: the registered certificate's, when its SHA-1 thumbprint is the
// header's x5t (Config.ClientCertificate); else the client's jwks_uri keys
// (those of the header's kid, if it names one).
func (p *Provider) assertionKeys(ctx context.Context, h jose.Header) ([]jose.JSONWebKey, error) {
	if cert := p.cfg.ClientCertificate; cert != nil {
		x5t, _ := h.ExtraHeaders["x5t"].(string)
		sum := sha1.Sum(cert.Raw)
		if x5t != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return nil, errors.New("client assertion: x5t is missing or not the registered certificate's thumbprint")
		}
		return []jose.JSONWebKey{{Key: cert.PublicKey}}, nil
	}
	keys, err := p.clientKeys(ctx)
	if err != nil {
		return nil, err
	}
	if h.KeyID != "" {
		return keys.Key(h.KeyID), nil
	}
	return keys.Keys, nil
}

func (p *Provider) checkAssertionClaims(r *http.Request, iss, sub, jti string, aud audience, exp *int64) error {
	now := p.now()
	cid := r.PostForm.Get("client_id")
	switch {
	case iss != p.cfg.ClientID || sub != p.cfg.ClientID || (cid != "" && cid != p.cfg.ClientID):
		return errors.New("client assertion: iss and sub must be the client ID")
	case !p.audienceAccepted(aud, r):
		return errors.New("client assertion: aud is not this provider")
	case exp == nil || !time.Unix(*exp, 0).After(now) || time.Unix(*exp, 0).After(now.Add(maxAssertionLife)):
		return errors.New("client assertion: exp missing, past, or too far ahead")
	case jti == "":
		return errors.New("client assertion: no jti")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, seen := p.assertionJTIs.get(jti, now); seen {
		return errors.New("client assertion: jti replayed")
	}
	p.assertionJTIs.put(jti, true, time.Unix(*exp, 0).Add(time.Minute), now)
	return nil
}

// Values of Config.AssertionAudience.
const (
	AudienceIssuer        = "issuer"
	AudienceTokenEndpoint = "token_endpoint"
)

// audienceAccepted: per Config.AssertionAudience, the issuer alone, the
// token endpoint's URL alone, or (default) either of them or the URL of
// the endpoint called (RFC 9126 §2).
func (p *Provider) audienceAccepted(aud audience, r *http.Request) bool {
	iss, token := p.tokenIssuer(), p.Endpoint("/token")
	switch p.cfg.AssertionAudience {
	case AudienceIssuer:
		return len(aud) == 1 && aud[0] == iss
	case AudienceTokenEndpoint:
		return len(aud) == 1 && aud[0] == token
	}
	here := p.Endpoint("/" + path.Base(r.URL.Path))
	for _, a := range aud {
		if a == iss || a == token || a == here {
			return true
		}
	}
	return false
}

// audience is a JWT aud claim: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// clientKeys fetches the client's key set from its jwks_uri (every time:
// the provider is for tests, and tests rotate keys).
func (p *Provider) clientKeys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	p.mu.Lock()
	uri := p.clientJWKSURI
	p.mu.Unlock()
	if uri == "" {
		return nil, errors.New("the client has no jwks_uri")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	p.clientJWKSFetches.Add(1)
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("client jwks_uri: status %d, %v", resp.StatusCode, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("client jwks_uri: %w", err)
	}
	return &set, nil
}

// SetClientJWKSURI sets where the client publishes its keys (its
// jwks_uri), for private_key_jwt; it overrides Config.ClientJWKSURI.
func (p *Provider) SetClientJWKSURI(uri string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clientJWKSURI = uri
}

// ClientAuths counts successful client authentications by endpoint and
// method, as "token private_key_jwt", "par client_secret_basic",
// "revoke client_secret_post".
func (p *Provider) ClientAuths() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.clientAuths))
	for k, v := range p.clientAuths {
		out[k] = v
	}
	return out
}

// ClientJWKSFetches counts fetches of the client's jwks_uri.
func (p *Provider) ClientJWKSFetches() int { return int(p.clientJWKSFetches.Load()) }
