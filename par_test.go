package bff

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/testsupport"
)

// With a PAR endpoint advertised, the authorization request's parameters go
// to the provider directly, with the client's authentication; the browser
// sees only client_id and request_uri.
func TestPARUsedWhenAdvertised(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{PAR: true}), func(o *Options) { o.AuthParams = map[string]string{"audience": "https://api.example"} })
	br := newBrowser(t)
	resp := br.send("GET", a.URL+"/auth/login?returnTo=/app&login_hint=alice&acr_values=urn:x")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Scheme+"://"+loc.Host+loc.Path != a.op.Endpoint("/authorize") {
		t.Fatalf("/auth/login = %d to %v", resp.StatusCode, loc)
	}
	var keys []string
	for k := range loc.Query() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"client_id", "request_uri"}) || loc.Query().Get("client_id") != a.op.ClientID() {
		t.Errorf("the browser's URL carries %v, want only client_id and request_uri", loc.Query())
	}
	if strings.Contains(loc.String(), "alice") || strings.Contains(loc.String(), "api.example") {
		t.Errorf("the browser's URL shows a pushed parameter: %s", loc)
	}
	resp, _ = br.follow(loc.String())
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/app" {
		t.Fatalf("sign-in ended with %d at %s", resp.StatusCode, resp.Request.URL)
	}
	pushed := a.op.LastAuthorizationRequest()
	for _, k := range []string{"state", "nonce", "code_challenge", "redirect_uri", "scope"} {
		if pushed.Get(k) == "" {
			t.Errorf("the pushed request lacks %s: %v", k, pushed)
		}
	}
	if pushed.Get("login_hint") != "alice" || pushed.Get("audience") != "https://api.example" ||
		pushed.Has("acr_values") || !strings.Contains(pushed.Get("claims"), `"urn:x"`) {
		t.Errorf("pushed request = %v", pushed)
	}
	if a.op.PushedRequests() != 1 || a.op.ClientAuths()["par client_secret_basic"] != 1 {
		t.Errorf("pushed %d, client authentications %v", a.op.PushedRequests(), a.op.ClientAuths())
	}
}

// Options.PAR: PARNever does not push (and refuses a provider that
// requires it); PARRequired refuses a provider without the endpoint; the
// default pushes to a provider that requires it.
func TestPARModes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		cfg           oidctest.Config
		mode          PARMode
		pushed        bool
		misconfigured bool
	}{
		{"never_with_par_provider", oidctest.Config{PAR: true}, PARNever, false, false},
		{"auto_without_par_provider", oidctest.Config{}, PARAuto, false, false},
		{"auto_with_provider_requiring_it", oidctest.Config{RequirePAR: true}, PARAuto, true, false},
		{"required_with_par_provider", oidctest.Config{PAR: true}, PARRequired, true, false},
		{"required_without_par_provider", oidctest.Config{}, PARRequired, false, true},
		{"never_with_provider_requiring_it", oidctest.Config{RequirePAR: true}, PARNever, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := testOP(t, tc.cfg)
			var logs logBuffer
			a := newUnreadyApp(t, op, func(o *Options) { o.PAR = tc.mode; o.Logger = logs.Logger() })
			br := newBrowser(t)
			if tc.misconfigured {
				testsupport.WaitUntil(t, 10*time.Second, "the misconfiguration", func() bool {
					code, _ := a.status(br, "GET", "/auth/login")
					return code == http.StatusInternalServerError
				})
				if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "PAR") {
					t.Errorf("no Error log naming PAR:\n%s", logs.String())
				}
				return
			}
			waitReady(t, a)
			a.login(br)
			if got := op.PushedRequests() == 1; got != tc.pushed {
				t.Errorf("pushed: %v, want %v", got, tc.pushed)
			}
		})
	}
}

// A PAR endpoint that fails: unreachable or 5xx is 503 (try again), a
// refusal is 400 with the provider's error code, an answer without a
// request_uri is 503; none starts a sign-in (no cookie).
func TestPARFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      http.HandlerFunc
		status int
		code   string
	}{
		{"status_500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, 503, "temporarily_unavailable"},
		{"refused", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid_request","error_description":"secret internals"}`))
		}, 400, "login_failed"},
		{"no_request_uri", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			w.Write([]byte(`{"expires_in":60}`))
		}, 503, "temporarily_unavailable"},
		{"garbage", oidctest.Garbage, 503, "temporarily_unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, front := frontedOP(t, oidctest.Config{PAR: true})
			a := newApp(t, op, nil)
			front.set("/par", tc.h)
			resp := newBrowser(t).get(a.URL + "/auth/login?returnTo=/app")
			if resp.StatusCode != tc.status || len(resp.Cookies()) != 0 || resp.Header.Get("Location") != "" {
				t.Fatalf("/auth/login = %d (cookies %v), want %d and nothing started", resp.StatusCode, resp.Cookies(), tc.status)
			}
			code, desc, _ := jsonError(t, resp)
			if code != tc.code || strings.Contains(desc, "internals") {
				t.Errorf("error %q %q", code, desc)
			}
		})
	}
}
