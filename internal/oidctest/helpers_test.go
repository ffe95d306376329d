package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

const testRedirect = "https://rp.example/callback"

// env is a provider served by httptest with a non-redirecting client.
type env struct {
	t   *testing.T
	op  *Provider
	srv *httptest.Server
	c   *http.Client
}

func newEnv(t *testing.T, cfg Config, issuerPath string) *env {
	t.Helper()
	op := New(cfg)
	srv := httptest.NewServer(op)
	t.Cleanup(srv.Close)
	op.SetIssuer(srv.URL + issuerPath)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &env{t: t, op: op, srv: srv, c: c}
}

func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

type authReq struct {
	scope, state, nonce, verifier, challenge, method, loginHint string
	noPKCE                                                      bool
	extra                                                       url.Values // more parameters (prompt, max_age, ...)
}

func (e *env) authorizeURL(a *authReq) string {
	if a.scope == "" {
		a.scope = "openid profile email offline_access"
	}
	if a.state == "" {
		a.state = "st-" + rand.Text()
	}
	if a.nonce == "" {
		a.nonce = "n-" + rand.Text()
	}
	q := url.Values{
		"client_id":     {e.op.ClientID()},
		"response_type": {"code"},
		"redirect_uri":  {testRedirect},
		"scope":         {a.scope},
		"state":         {a.state},
		"nonce":         {a.nonce},
	}
	if !a.noPKCE {
		if a.verifier == "" {
			a.verifier, a.challenge = pkce()
		}
		if a.method == "" {
			a.method = "S256"
		}
		q.Set("code_challenge", a.challenge)
		q.Set("code_challenge_method", a.method)
	}
	if a.loginHint != "" {
		q.Set("login_hint", a.loginHint)
	}
	for k, v := range a.extra {
		q[k] = v
	}
	return e.op.Endpoint("/authorize") + "?" + q.Encode()
}

// authorize performs the authorization request and returns the callback
// query.
func (e *env) authorize(a *authReq) url.Values {
	e.t.Helper()
	resp, err := e.c.Get(e.authorizeURL(a))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return e.callback(resp)
}

func (e *env) callback(resp *http.Response) url.Values {
	e.t.Helper()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect {
		e.t.Fatalf("redirected to %q", got)
	}
	return loc.Query()
}

// post sends a form with client_secret_basic (unless the form holds
// client_id) and decodes the JSON answer.
func (e *env) post(path string, form url.Values) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.op.Endpoint(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if form.Get("client_id") == "" {
		req.SetBasicAuth(e.op.ClientID(), e.op.ClientSecret())
	}
	resp, err := e.c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			e.t.Fatalf("%s: non-JSON answer %q", path, body)
		}
	}
	return resp.StatusCode, m
}

func (e *env) exchange(code, verifier string) (int, map[string]any) {
	return e.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {verifier}})
}

func (e *env) refresh(rt string) (int, map[string]any) {
	return e.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// login runs a whole code flow and returns the token response.
func (e *env) login(a *authReq) map[string]any {
	e.t.Helper()
	q := e.authorize(a)
	if q.Get("error") != "" {
		e.t.Fatalf("authorize error %q: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != a.state {
		e.t.Fatalf("state %q, want %q", q.Get("state"), a.state)
	}
	st, tok := e.exchange(q.Get("code"), a.verifier)
	if st != 200 {
		e.t.Fatalf("token: %d %v", st, tok)
	}
	return tok
}

func (e *env) getJSON(path string) (int, map[string]any) {
	e.t.Helper()
	resp, err := e.c.Get(e.op.Endpoint(path))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (e *env) userinfo(at string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.op.Endpoint("/userinfo"), nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := e.c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// fetchKeys reads /jwks key by key, skipping keys go-jose cannot parse.
func (e *env) fetchKeys() []jose.JSONWebKey {
	e.t.Helper()
	resp, err := e.c.Get(e.op.Endpoint("/jwks"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw struct{ Keys []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		e.t.Fatal(err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(r) == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// verify checks a JWT's signature against the published JWKS and returns
// its claims and header.
func (e *env) verify(token string) (map[string]any, jose.Header, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, jose.Header{}, err
	}
	var lastErr error
	for _, k := range e.fetchKeys() {
		if k.KeyID != jws.Signatures[0].Header.KeyID {
			continue
		}
		payload, err := jws.Verify(k.Key)
		if err != nil {
			lastErr = err
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			return nil, jose.Header{}, err
		}
		return m, jws.Signatures[0].Header, nil
	}
	if lastErr == nil {
		lastErr = errNoKey
	}
	return nil, jose.Header{}, lastErr
}

var errNoKey = errors.New("no key with that kid")

// claimsUnverified decodes a JWT's payload without verification.
func claimsUnverified(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
