package bff

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// Tests of README's provider recipes: each provider's profile of the test
// provider (its discovery document and quirks), configured with exactly
// the options its recipe gives, signs in, refreshes and signs out.

// Where POST /auth/logout sends the browser.
type logoutDest int

const (
	toEndSession    logoutDest = iota // the end-session endpoint, and back to PostLogoutRedirect
	toProviderPage                    // the end-session endpoint, without the way back
	toCognitoLogout                   // Cognito's /logout, then PostLogoutRedirect
	toAppOnly                         // PostLogoutRedirect: the session ends here only
)

// recipe is a provider's profile, the options of its README recipe, and
// what bff then does.
type recipe struct {
	prof    oidctest.Profile
	options func(o *Options)
	revokes bool       // sign-out revokes the refresh token
	logout  logoutDest // where sign-out goes
	lacks   []string   // what discovery logs the provider lacks
}

// recipes are README's provider recipes.
var recipes = []recipe{
	{oidctest.Google, func(o *Options) {
		o.Scopes = []string{"openid", "profile", "email"}
		o.AuthParams = map[string]string{"access_type": "offline", "prompt": "consent"}
	}, true, toAppOnly, []string{"end_session_endpoint", "backchannel", "iss_parameter"}},
	{oidctest.EntraID, func(o *Options) {
		o.DisableConsentPrompt, o.InsecureAllowNoPKCE = true, true
	}, false, toEndSession, []string{"revocation_endpoint", "backchannel", "iss_parameter"}},
	{oidctest.EntraIDMultiTenant, func(o *Options) {
		o.DisableConsentPrompt, o.InsecureAllowNoPKCE = true, true
	}, false, toEndSession, []string{"revocation_endpoint", "backchannel", "iss_parameter"}},
	{oidctest.Auth0, func(o *Options) {
		o.Issuer += "/"
		o.AuthParams = map[string]string{"audience": "https://api.example"}
		o.DisableConsentPrompt = true
	}, true, toEndSession, []string{"backchannel", "iss_parameter"}},
	{oidctest.Okta, nil, true, toEndSession, []string{"backchannel", "iss_parameter"}},
	{oidctest.Keycloak, nil, true, toEndSession, nil},
	{oidctest.Cognito, func(o *Options) {
		o.Scopes = []string{"openid", "profile", "email"}
		o.InsecureAllowNoPKCE = true
		o.ProviderLogout = ProviderLogoutCognito
	}, false, toCognitoLogout, []string{"revocation_endpoint", "backchannel", "iss_parameter"}},
	{oidctest.Dex, nil, false, toAppOnly, []string{"revocation_endpoint", "end_session_endpoint", "backchannel", "iss_parameter"}},
	{oidctest.Hydra, func(o *Options) { o.Issuer += "/" }, true, toEndSession, []string{"iss_parameter"}},
	{oidctest.Zitadel, func(o *Options) {
		o.Issuer += "/"
		o.ProviderLogout = ProviderLogoutNoReturn
	}, true, toProviderPage, []string{"backchannel", "iss_parameter"}},
}

// lackMembers are the discovery members the lacks line may name.
var lackMembers = []string{"revocation_endpoint", "end_session_endpoint", "backchannel", "userinfo_endpoint", "iss_parameter"}

// profileOP starts the test provider with a profile, served at its
// issuer path.
func profileOP(t *testing.T, prof oidctest.Profile, clock *offsetClock) *oidctest.Provider {
	t.Helper()
	op := testOP(t, oidctest.Config{Profile: prof, Now: clock.Now, AccessTokenTTL: 2 * time.Minute})
	op.SetIssuer(op.Issuer() + prof.IssuerPath)
	return op
}

func TestProviderRecipes(t *testing.T) {
	for _, rc := range recipes {
		t.Run(rc.prof.Name, func(t *testing.T) {
			clock := &offsetClock{}
			op := profileOP(t, rc.prof, clock)
			var logs rtSyncBuffer
			a := newApp(t, op, func(o *Options) {
				o.Now, o.PostLogoutRedirect = clock.Now, "/bye"
				logInto(o, &logs)
				if rc.options != nil {
					rc.options(o)
				}
			})
			a.route("GET /bye", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "signed out") }))
			checkLacks(t, logs.String(), rc.lacks)

			br := newBrowser(t)
			a.login(br)
			id, _ := a.sessionCookie(br)
			s, err := a.storeSession(id)
			if err != nil || s.rec.RefreshToken == "" {
				t.Fatalf("no refresh token after sign-in (%v): the session would end with the first access token", err)
			}
			rt := s.rec.RefreshToken

			clock.Advance(90 * time.Second) // within the refresh skew
			if !signedIn(t, a, br) || op.RefreshGrants() != 1 {
				t.Fatalf("after the access token's expiry: refresh grants %d", op.RefreshGrants())
			}
			if op.RefreshTokenValid(rt) != rc.prof.NoRotation {
				t.Errorf("the first refresh token valid after a refresh = %v, want %v (rotation)", op.RefreshTokenValid(rt), rc.prof.NoRotation)
			}

			checkRecipeLogout(t, a, br, rc)
			if signedIn(t, a, br) {
				t.Error("signed in after sign-out")
			}
			if revoked := op.Revocations() == 1; revoked != rc.revokes {
				t.Errorf("revocations %d, want revoked = %v", op.Revocations(), rc.revokes)
			}
		})
	}
}

// checkLacks: discovery logged, once, exactly what the provider lacks.
func checkLacks(t *testing.T, logs string, want []string) {
	t.Helper()
	var lines []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "the provider lacks features") {
			lines = append(lines, line)
		}
	}
	if len(want) == 0 {
		if len(lines) != 0 {
			t.Errorf("a complete provider: %q", lines)
		}
		return
	}
	if len(lines) != 1 {
		t.Fatalf("lacks lines: %q, want one", lines)
	}
	for _, m := range lackMembers {
		if strings.Contains(lines[0], m) != slices.Contains(want, m) {
			t.Errorf("lacks line %q: names %s = %v, want %v", lines[0], m, !slices.Contains(want, m), slices.Contains(want, m))
		}
	}
}

// checkRecipeLogout signs the browser out and follows it where the recipe
// says it goes.
func checkRecipeLogout(t *testing.T, a *app, br *browser, rc recipe) {
	t.Helper()
	resp := a.logout(br)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	at := loc.Scheme + "://" + loc.Host + loc.Path
	q := loc.Query()
	switch rc.logout {
	case toAppOnly:
		if loc.String() != "/bye" {
			t.Fatalf("sign-out went to %s, want /bye", loc)
		}
		return
	case toCognitoLogout:
		origin, _ := url.Parse(a.op.Issuer())
		if at != origin.Scheme+"://"+origin.Host+"/logout" || q.Get("client_id") != a.op.ClientID() ||
			q.Get("logout_uri") != a.URL+"/bye" {
			t.Fatalf("sign-out went to %s, want Cognito's /logout with client_id and logout_uri", loc)
		}
	default:
		if at != a.op.Endpoint("/end-session") || q.Has("post_logout_redirect_uri") != (rc.logout == toEndSession) {
			t.Fatalf("sign-out went to %s", loc)
		}
		if rc.logout == toProviderPage {
			return
		}
	}
	if _, body := br.follow(loc.String()); a.op.EndSessions() != 1 || body != "signed out" {
		t.Errorf("at the provider: end sessions %d, landed on %q", a.op.EndSessions(), body)
	}
}
