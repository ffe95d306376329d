package oidctest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// push sends a's parameters to /par with client_secret_basic.
func (e *env) push(a *authReq) (int, map[string]any) {
	e.t.Helper()
	u, _ := url.Parse(e.authorizeURL(a))
	q := u.Query()
	q.Del("client_id") // authenticated by client_secret_basic
	return e.post("/par", q)
}

func TestPAR(t *testing.T) {
	e := newEnv(t, Config{PAR: true}, "/idp")
	_, d := e.getJSON("/.well-known/openid-configuration")
	if d["pushed_authorization_request_endpoint"] != e.op.Endpoint("/par") || d["require_pushed_authorization_requests"] != false {
		t.Fatalf("discovery: %v %v", d["pushed_authorization_request_endpoint"], d["require_pushed_authorization_requests"])
	}
	a := &authReq{extra: url.Values{"login_hint": {"alice"}, "ui_locales": {"de"}}}
	st, res := e.push(a)
	uri, _ := res["request_uri"].(string)
	if st != http.StatusCreated || !strings.HasPrefix(uri, requestURIPrefix) || res["expires_in"] != float64(60) {
		t.Fatalf("push: %d %v", st, res)
	}
	front := e.op.Endpoint("/authorize") + "?" + url.Values{"client_id": {e.op.ClientID()}, "request_uri": {uri}}.Encode()
	resp, err := e.c.Get(front)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	q := e.callback(resp)
	if q.Get("state") != a.state || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	if got := e.op.LastAuthorizationRequest(); got.Get("ui_locales") != "de" || got.Get("nonce") != a.nonce || got.Has("client_secret") {
		t.Errorf("LastAuthorizationRequest = %v", got)
	}
	if st, tok := e.exchange(q.Get("code"), a.verifier); st != 200 || tok["id_token"] == nil {
		t.Fatalf("exchange: %d %v", st, tok)
	}
	if n := e.op.ClientAuths()["par "+AuthSecretBasic]; n != 1 || e.op.PushedRequests() != 1 {
		t.Errorf("par auths %v, pushed %d", e.op.ClientAuths(), e.op.PushedRequests())
	}
	// The request_uri is single use, and bound to the client.
	resp, _ = e.c.Get(front)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reused request_uri: %d", resp.StatusCode)
	}
	_, res = e.push(&authReq{})
	resp, _ = e.c.Get(e.op.Endpoint("/authorize") + "?" + url.Values{"client_id": {"other"}, "request_uri": {res["request_uri"].(string)}}.Encode())
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("request_uri with another client_id: %d", resp.StatusCode)
	}

	for name, form := range map[string]url.Values{
		"unauthenticated":  nil,
		"request_uri":      {"request_uri": {"urn:x"}},
		"bad_redirect_uri": {"redirect_uri": {"javascript:alert(1)"}},
		"bad_prompt":       {"prompt": {"none login"}},
	} {
		t.Run(name, func(t *testing.T) {
			u, _ := url.Parse(e.authorizeURL(&authReq{}))
			body := u.Query()
			body.Del("client_id")
			for k, v := range form {
				body[k] = v
			}
			if name == "unauthenticated" {
				body.Set("client_id", e.op.ClientID())
			}
			if st, res := e.post("/par", body); st/100 != 4 || res["request_uri"] != nil {
				t.Errorf("push: %d %v", st, res)
			}
		})
	}
}

func TestRequirePAR(t *testing.T) {
	e := newEnv(t, Config{RequirePAR: true}, "")
	if _, d := e.getJSON("/.well-known/openid-configuration"); d["require_pushed_authorization_requests"] != true {
		t.Fatalf("discovery: %v", d["require_pushed_authorization_requests"])
	}
	resp, err := e.c.Get(e.authorizeURL(&authReq{}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unpushed authorization request: %d, want 400", resp.StatusCode)
	}
}

func TestPAROff(t *testing.T) {
	e := newEnv(t, Config{}, "")
	if _, d := e.getJSON("/.well-known/openid-configuration"); d["pushed_authorization_request_endpoint"] != nil {
		t.Errorf("PAR advertised: %v", d["pushed_authorization_request_endpoint"])
	}
	resp, err := e.c.PostForm(e.op.Endpoint("/par"), url.Values{"client_id": {e.op.ClientID()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/par: %d, want 404", resp.StatusCode)
	}
}
