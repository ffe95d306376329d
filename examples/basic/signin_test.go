package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gobff/bff/examples/internal/exampletest"
	"github.com/gobff/bff/internal/oidctest"
)

// writeECKey writes a new EC P-256 key as a PEM file and returns its path.
func writeECKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// BFF_CLIENT_KEY: the app authenticates with private_key_jwt (no secret),
// the dev IdP verifying with the keys the app publishes at /auth/jwks.
func TestClientKey(t *testing.T) {
	s, appURL := startApp(t, map[string]string{"BFF_CLIENT_KEY": writeECKey(t)})
	br := exampletest.NewBrowser(t)
	if jwks := br.Get(appURL + "/auth/jwks"); jwks.StatusCode != 200 || !strings.Contains(jwks.Body, `"kid"`) {
		t.Fatalf("GET /auth/jwks: %d %s", jwks.StatusCode, jwks.Body)
	}
	br.SignIn(appURL, "/", "alice", "alice")
	if r := br.Get(appURL + "/api/me"); r.StatusCode != 200 {
		t.Fatalf("GET /api/me: %d", r.StatusCode)
	}
	auths := s.DevIdP.Provider.ClientAuths()
	if auths["token private_key_jwt"] != 1 || auths["par private_key_jwt"] != 1 || len(auths) != 2 {
		t.Errorf("client authentications at the dev IdP = %v, want private_key_jwt only", auths)
	}
}

// BFF_PAR: the dev IdP offers PAR, used by default (the browser's URL has
// only client_id and request_uri) and not with BFF_PAR=never.
func TestPAREnv(t *testing.T) {
	for _, tc := range []struct {
		env    string
		pushed bool
	}{{"", true}, {"never", false}, {"require", true}} {
		t.Run("BFF_PAR="+tc.env, func(t *testing.T) {
			s, appURL := startApp(t, map[string]string{"BFF_PAR": tc.env})
			br := exampletest.NewBrowser(t)
			loc, _ := url.Parse(br.Get(appURL + "/auth/login?returnTo=/").Header.Get("Location"))
			if loc.Query().Has("request_uri") != tc.pushed || loc.Query().Has("state") == tc.pushed {
				t.Errorf("the sign-in URL is %v, want pushed %v", loc, tc.pushed)
			}
			br.SignIn(appURL, "/", "alice", "alice")
			if got := s.DevIdP.Provider.PushedRequests() > 0; got != tc.pushed {
				t.Errorf("pushed requests %d", s.DevIdP.Provider.PushedRequests())
			}
		})
	}
}

// BFF_AUTH_PARAMS reach the provider with every sign-in; /auth/login passes
// the browser's sign-in parameters.
func TestAuthParamsEnv(t *testing.T) {
	s, appURL := startApp(t, map[string]string{"BFF_AUTH_PARAMS": "audience=https%3A%2F%2Fapi.example&access_type=offline"})
	br := exampletest.NewBrowser(t)
	br.SignInWith(appURL, url.Values{"returnTo": {"/"}, "ui_locales": {"de"}, "login_hint": {"alice"}}, "alice", "alice")
	got := s.DevIdP.Provider.LastAuthorizationRequest()
	if got.Get("audience") != "https://api.example" || got.Get("access_type") != "offline" || got.Get("ui_locales") != "de" ||
		got.Get("login_hint") != "alice" {
		t.Errorf("the dev IdP got %v", got)
	}
}

// BFF_STEPUP_ACR: GET /api/stepup answers 401 insufficient_user_authentication
// (naming the acr values) until the user signs in with acr_values, then
// {"acr", "authTime"} for the same user, with a new session cookie.
func TestStepUpRoute(t *testing.T) {
	_, appURL := startApp(t, map[string]string{"BFF_STEPUP_ACR": oidctest.ACRStrong})
	br := exampletest.NewBrowser(t)
	br.SignIn(appURL, "/", "alice", "alice")
	before, _ := br.Cookie(appURL, "__Host-bff")
	r := br.Get(appURL + "/api/stepup")
	want := fmt.Sprintf(`acr_values="%s"`, oidctest.ACRStrong)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), want) ||
		decodeObject(t, r.Body)["acr_values"] != oidctest.ACRStrong {
		t.Fatalf("GET /api/stepup before the step-up: %d %q %s", r.StatusCode, r.Header.Get("WWW-Authenticate"), r.Body)
	}
	landed := br.SignInWith(appURL, url.Values{"acr_values": {oidctest.ACRStrong}, "returnTo": {"/?stepped-up"}}, "alice", "alice")
	if landed.Request.URL.String() != appURL+"/?stepped-up" {
		t.Fatalf("the step-up ended at %s", landed.Request.URL)
	}
	r = br.Get(appURL + "/api/stepup")
	body := decodeObject(t, r.Body)
	if r.StatusCode != 200 || body["acr"] != oidctest.ACRStrong || body["authTime"] == "" {
		t.Fatalf("GET /api/stepup after the step-up: %d %s", r.StatusCode, r.Body)
	}
	after, _ := br.Cookie(appURL, "__Host-bff")
	if after.Value == before.Value || decodeObject(t, br.Get(appURL+"/api/me").Body)["sub"] != oidctest.DefaultUser.Subject {
		t.Error("the step-up did not give the same user a new session")
	}
}

// Without BFF_STEPUP_ACR there is no /api/stepup.
func TestNoStepUpRoute(t *testing.T) {
	_, appURL := startApp(t, nil)
	if r := exampletest.NewBrowser(t).Get(appURL + "/api/stepup"); r.StatusCode == http.StatusUnauthorized || r.StatusCode == 200 {
		t.Errorf("GET /api/stepup without BFF_STEPUP_ACR: %d", r.StatusCode)
	}
}
