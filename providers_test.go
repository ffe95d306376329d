package bff

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/testsupport"
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
		o.Tenants = []string{oidctest.EntraTenant}
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
			var logs logBuffer
			a := newApp(t, op, func(o *Options) {
				o.Now, o.PostLogoutRedirect = clock.Now, "/bye"
				o.Logger = logs.Logger()
				if rc.options != nil {
					rc.options(o)
				}
			})
			a.route("GET /bye", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "signed out") }))
			checkLacks(t, logs.String(), rc.lacks)

			br := a.signIn(t)
			rt := a.browserSession(br).rec.RefreshToken
			if rt == "" {
				t.Fatal("no refresh token after sign-in: the session would end with the first access token")
			}

			clock.Advance(90 * time.Second) // within the refresh skew
			if !signedIn(t, a, br) || op.RefreshGrants() != 1 {
				t.Fatalf("after the access token's expiry: refresh grants %d", op.RefreshGrants())
			}
			if op.RefreshTokenValid(rt) != rc.prof.NoRotation {
				t.Errorf("the first refresh token valid after a refresh = %v, want %v (rotation)", op.RefreshTokenValid(rt), rc.prof.NoRotation)
			}

			pushed := 0
			for k, n := range op.ClientAuths() {
				if strings.HasPrefix(k, "par ") {
					pushed += n
				}
			}
			if (pushed > 0) != rc.prof.PAR {
				t.Errorf("pushed authorization requests %d, want some = %v", pushed, rc.prof.PAR)
			}

			if !rc.prof.NoBackchannel {
				checkRecipeBackchannel(t, a)
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

// checkRecipeBackchannel: a provider with back-channel logout ends
// another browser's session with a logout token for its sid.
func checkRecipeBackchannel(t *testing.T, a *app) {
	t.Helper()
	br := a.signIn(t)
	s := a.browserSession(br)
	if code, _, body := a.backchannel(a.op.LogoutToken(s.rec.Subject, s.rec.SID, nil)); code != http.StatusOK || signedIn(t, a, br) {
		t.Fatalf("back-channel logout = %d %s; still signed in = %v", code, body, signedIn(t, a, br))
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

// Entra ID's multi-tenant endpoint: a user of a tenant not in Tenants is
// refused (InsecureAnyTenant lets every tenant in); an ID token whose iss
// is not its tid's issuer is refused whatever the options; without
// Tenants the templated issuer is a misconfiguration.
func TestEntraMultiTenant(t *testing.T) {
	other := oidctest.EntraIDMultiTenant
	other.Tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	entra := func(prof oidctest.Profile, opt func(*Options)) *app {
		op := profileOP(t, prof, &offsetClock{})
		return newApp(t, op, func(o *Options) {
			o.DisableConsentPrompt, o.InsecureAllowNoPKCE = true, true
			opt(o)
		})
	}
	refused := func(a *app) bool {
		resp, body := newBrowser(t).follow(a.URL + "/auth/login?returnTo=/app")
		return resp.StatusCode == http.StatusBadRequest && strings.Contains(body, "ID token failed verification")
	}
	t.Run("other tenant refused", func(t *testing.T) {
		a := entra(other, func(o *Options) { o.Tenants = []string{oidctest.EntraTenant} })
		if !refused(a) || a.op.CodeGrants() != 1 {
			t.Fatal("a user of a tenant not in Tenants signed in")
		}
	})
	t.Run("any tenant", func(t *testing.T) {
		var logs logBuffer
		a := entra(other, func(o *Options) { o.InsecureAnyTenant = true; o.Logger = logs.Logger() })
		a.login(newBrowser(t))
		if !strings.Contains(logs.String(), "level=WARN msg=\"bff: Options.InsecureAnyTenant is set") {
			t.Errorf("no warning about InsecureAnyTenant:\n%s", logs.String())
		}
	})
	t.Run("iss of another tenant", func(t *testing.T) {
		a := entra(oidctest.EntraIDMultiTenant, func(o *Options) { o.InsecureAnyTenant = true })
		a.op.Misbehave(func(m *oidctest.Misbehavior) {
			m.IDTokenIssuer = strings.Replace(a.op.Issuer(), "organizations", other.Tenant, 1)
		})
		if !refused(a) {
			t.Fatal("an ID token whose iss names another tenant than its tid signed in")
		}
	})
	t.Run("refreshed ID token of another tenant", func(t *testing.T) {
		clock := &offsetClock{}
		op := profileOP(t, oidctest.EntraIDMultiTenant, clock)
		a := newApp(t, op, func(o *Options) {
			o.DisableConsentPrompt, o.InsecureAllowNoPKCE, o.Now = true, true, clock.Now
			o.Tenants = []string{oidctest.EntraTenant, other.Tenant}
		})
		br := a.signIn(t)
		op.Misbehave(func(m *oidctest.Misbehavior) {
			m.RefreshIDTokenIssuer = strings.Replace(op.Issuer(), "organizations", other.Tenant, 1)
		})
		clock.Advance(90 * time.Second)
		if signedIn(t, a, br) || op.RefreshGrants() != 1 {
			t.Fatalf("the session survived a refreshed ID token whose iss is not its tid's (refresh grants %d)", op.RefreshGrants())
		}
	})
	t.Run("iss parameter", func(t *testing.T) {
		a := entra(oidctest.EntraIDMultiTenant, func(o *Options) { o.Tenants = []string{oidctest.EntraTenant} })
		for tenant, ok := range map[string]bool{oidctest.EntraTenant: true, other.Tenant: false} {
			a.op.Misbehave(func(m *oidctest.Misbehavior) {
				m.IssParam = strings.Replace(a.op.Issuer(), "organizations", tenant, 1)
			})
			resp, body := newBrowser(t).follow(a.URL + "/auth/login?returnTo=/app")
			if (body == "app page") != ok {
				t.Errorf("iss parameter of tenant %s: %d %s, want signed in = %v", tenant, resp.StatusCode, body, ok)
			}
		}
	})
	t.Run("no tenants", func(t *testing.T) {
		op := profileOP(t, oidctest.EntraIDMultiTenant, &offsetClock{})
		var logs logBuffer
		a := newUnreadyApp(t, op, func(o *Options) { o.InsecureAllowNoPKCE = true; o.Logger = logs.Logger() })
		testsupport.WaitUntil(t, 10*time.Second, "the misconfiguration", a.bff.misconfigured.Load)
		if !strings.Contains(logs.String(), "Options.Tenants") {
			t.Errorf("the log gives no hint:\n%s", logs.String())
		}
	})
}

// What the recipes' options are for: Google refuses the default
// offline_access scope (the sign-in fails), and Auth0 gives the API a JWT
// access token only when the sign-in names an audience.
func TestRecipeQuirks(t *testing.T) {
	t.Run("Google without the recipe", func(t *testing.T) {
		a := newApp(t, profileOP(t, oidctest.Google, &offsetClock{}), nil)
		visited := newBrowser(t).Navigate(a.URL + "/auth/login?returnTo=/app").Visited
		if last := visited[len(visited)-1]; !strings.HasSuffix(last, "/app?error=invalid_scope") {
			t.Fatalf("sign-in ended at %s, want /app?error=invalid_scope", last)
		}
	})
	for _, audience := range []string{"", "https://api.example"} {
		t.Run("Auth0 audience "+audience, func(t *testing.T) {
			op := profileOP(t, oidctest.Auth0, &offsetClock{})
			a := newApp(t, op, func(o *Options) {
				o.Issuer += "/"
				if audience != "" {
					o.AuthParams = map[string]string{"audience": audience}
				}
			})
			br := a.signIn(t)
			_, at := a.status(br, "GET", "/api/token")
			if isJWT := strings.Count(at, ".") == 2; isJWT != (audience != "") {
				t.Fatalf("access token %q: a JWT = %v, want %v", at, isJWT, audience != "")
			}
			if audience != "" && !strings.Contains(string(jwtPayload(t, at)), `"aud":"`+audience+`"`) {
				t.Errorf("access token claims %s lack aud %s", jwtPayload(t, at), audience)
			}
		})
	}
}

// jwtPayload decodes a JWT's payload without verifying it.
func jwtPayload(t *testing.T, jwt string) []byte { return jwtPart(t, jwt, 1) }

// jwtPart decodes part i (0: header, 1: payload) of a JWT.
func jwtPart(t *testing.T, jwt string, i int) []byte {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	return b
}
