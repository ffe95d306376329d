package oidctest

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Profile imitates a real provider's discovery document and quirks
// (Config.Profile). The zero value is this package's own, complete
// provider. Profiles are data: the table below, not code paths per
// provider, so that what each imitates can be read in one place.
type Profile struct {
	// Name names the provider, as tests print it.
	Name string
	// IssuerPath is the path of the provider's issuer below its origin
	// (Keycloak's /realms/<realm>, Entra ID's /<tenant>/v2.0): tests serve
	// the provider at origin+IssuerPath.
	IssuerPath string
	// TrailingSlash makes the issuer end with "/" in the discovery
	// document, tokens and authorization responses (Auth0, zitadel).
	TrailingSlash bool
	// Tenant is the tid claim of ID tokens (Entra ID). With
	// TenantTemplate, the issuer's first path segment (common,
	// organizations) is "{tenantid}" in the discovery document and
	// Tenant in the tokens' iss, as Entra ID's multi-tenant endpoints do.
	Tenant         string
	TenantTemplate bool
	// RejectScopes are scopes the authorization endpoint refuses with
	// invalid_scope (Google and Cognito refuse offline_access).
	RejectScopes []string
	// Refresh says when a code grant gives a refresh token.
	Refresh RefreshRule
	// NoRotation keeps the refresh token: a refresh answers without a new
	// one, and the old one stays valid (Google, Cognito, Auth0 unless
	// rotation is turned on).
	NoRotation bool
	// AudienceJWT issues JWT access tokens (aud: the audience parameter)
	// only when the authorization request names an audience; otherwise
	// they are opaque (Auth0).
	AudienceJWT bool
	// AuthMethods are token_endpoint_auth_methods_supported (nil:
	// Config.TokenAuthMethods or this package's default).
	AuthMethods []string
	// Members of the discovery document left out: the provider lacks
	// them (its endpoints still answer, as an unadvertised one might).
	NoPKCEAdvertised, NoRevocation, NoEndSession, NoBackchannel, NoIssParam bool
	// PAR advertises and serves pushed authorization requests.
	PAR bool
	// CognitoLogout serves Amazon Cognito's own logout endpoint at
	// /logout of the provider's origin: client_id and a registered
	// logout_uri, no id_token_hint, no state.
	CognitoLogout bool
	// ScopesSupported is scopes_supported (nil: openid profile email
	// offline_access).
	ScopesSupported []string
}

// RefreshRule says when a code grant gives a refresh token.
type RefreshRule int

const (
	// RefreshOfflineAccess: for the offline_access scope (OIDC Core §11).
	RefreshOfflineAccess RefreshRule = iota
	// RefreshAccessTypeOffline: for the access_type=offline parameter
	// (Google).
	RefreshAccessTypeOffline
	// RefreshAlways: with every code grant (Cognito).
	RefreshAlways
)

var (
	secretMethods   = []string{AuthSecretBasic, AuthSecretPost}
	allMethods      = []string{AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT}
	scopesNoOffline = []string{"openid", "profile", "email"}
)

// Profiles of real providers, as their discovery documents and
// documentation describe them (README's provider recipes say what bff
// does with each).
var (
	Google = Profile{Name: "Google", RejectScopes: []string{"offline_access"}, Refresh: RefreshAccessTypeOffline,
		NoRotation: true, AuthMethods: secretMethods, NoEndSession: true, NoBackchannel: true, NoIssParam: true,
		ScopesSupported: scopesNoOffline}
	EntraID = Profile{Name: "EntraID", IssuerPath: "/" + EntraTenant + "/v2.0", Tenant: EntraTenant,
		AuthMethods: allMethods, NoPKCEAdvertised: true, NoRevocation: true, NoBackchannel: true, NoIssParam: true}
	EntraIDMultiTenant = Profile{Name: "EntraIDMultiTenant", IssuerPath: "/organizations/v2.0", Tenant: EntraTenant,
		TenantTemplate: true, AuthMethods: allMethods, NoPKCEAdvertised: true, NoRevocation: true, NoBackchannel: true,
		NoIssParam: true}
	Auth0 = Profile{Name: "Auth0", TrailingSlash: true, AudienceJWT: true, NoRotation: true, AuthMethods: allMethods,
		NoBackchannel: true, NoIssParam: true}
	Okta = Profile{Name: "Okta", IssuerPath: "/oauth2/default", AuthMethods: allMethods, NoBackchannel: true,
		NoIssParam: true, PAR: true}
	Keycloak = Profile{Name: "Keycloak", IssuerPath: "/realms/bff", AuthMethods: allMethods, PAR: true}
	Cognito  = Profile{Name: "Cognito", IssuerPath: "/us-east-1_bff", RejectScopes: []string{"offline_access"},
		Refresh: RefreshAlways, NoRotation: true, AuthMethods: secretMethods, NoPKCEAdvertised: true, NoRevocation: true,
		NoEndSession: true, NoBackchannel: true, NoIssParam: true, CognitoLogout: true, ScopesSupported: scopesNoOffline}
	Dex = Profile{Name: "dex", IssuerPath: "/dex", AuthMethods: secretMethods, NoRevocation: true, NoEndSession: true,
		NoBackchannel: true, NoIssParam: true}
	Hydra   = Profile{Name: "hydra", TrailingSlash: true, AuthMethods: allMethods, NoIssParam: true}
	Zitadel = Profile{Name: "zitadel", TrailingSlash: true, AuthMethods: allMethods, NoBackchannel: true,
		NoIssParam: true}
)

// EntraTenant is the tenant (tid) of the Entra ID profiles' users.
const EntraTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// TenantPlaceholder is what stands for the tenant in a multi-tenant
// issuer template.
const TenantPlaceholder = "{tenantid}"

// Profiles lists every profile, for tests that run them all.
var Profiles = []Profile{Google, EntraID, EntraIDMultiTenant, Auth0, Okta, Keycloak, Cognito, Dex, Hydra, Zitadel}

// withTenant replaces the first path segment of iss by seg.
func withTenant(iss, seg string) string {
	u, err := url.Parse(iss)
	if err != nil {
		return iss
	}
	parts := strings.SplitN(strings.TrimPrefix(u.Path, "/"), "/", 2)
	parts[0] = seg
	return u.Scheme + "://" + u.Host + "/" + strings.Join(parts, "/")
}

// tokenIssuer is the iss of the provider's tokens and authorization
// responses: the issuer, with the profile's tenant and trailing slash.
func (p *Provider) tokenIssuer() string {
	return p.profileIssuer(p.Issuer(), p.cfg.Profile.Tenant)
}

// tokenIssuerLocked is tokenIssuer for a caller holding p.mu.
func (p *Provider) tokenIssuerLocked() string {
	return p.profileIssuer(p.issuer, p.cfg.Profile.Tenant)
}

// discoveryIssuer is the discovery document's issuer: with a tenant
// template, the placeholder in place of the tenant.
func (p *Provider) discoveryIssuer() string {
	return p.profileIssuer(p.Issuer(), TenantPlaceholder)
}

func (p *Provider) profileIssuer(iss, tenant string) string {
	prof := p.cfg.Profile
	if prof.TenantTemplate {
		iss = withTenant(iss, tenant)
	}
	if prof.TrailingSlash {
		iss += "/"
	}
	return iss
}

// applyProfile removes from (and sets in) a discovery document what the
// profile says.
func (p *Provider) applyProfile(d map[string]any) {
	prof := p.cfg.Profile
	for member, lacks := range map[string]bool{
		"code_challenge_methods_supported":               prof.NoPKCEAdvertised,
		"revocation_endpoint":                            prof.NoRevocation,
		"revocation_endpoint_auth_methods_supported":     prof.NoRevocation,
		"end_session_endpoint":                           prof.NoEndSession,
		"backchannel_logout_supported":                   prof.NoBackchannel,
		"backchannel_logout_session_supported":           prof.NoBackchannel,
		"authorization_response_iss_parameter_supported": prof.NoIssParam,
	} {
		if lacks {
			delete(d, member)
		}
	}
	if prof.ScopesSupported != nil {
		d["scopes_supported"] = prof.ScopesSupported
	}
}

// rejectsScope reports whether scope has a scope the profile refuses.
func (p *Provider) rejectsScope(scope string) bool {
	return slices.ContainsFunc(strings.Fields(scope), func(s string) bool {
		return slices.Contains(p.cfg.Profile.RejectScopes, s)
	})
}

// accessTokenLocked is a new access token of the family: opaque, or, when
// the profile has AudienceJWT and the sign-in named an audience, a JWT for
// that audience (as Auth0 issues). Caller holds p.mu.
func (p *Provider) accessTokenLocked(f *family, now time.Time, ttl time.Duration) string {
	if !p.cfg.Profile.AudienceJWT || f.audience == "" {
		return randomString() + randomString()
	}
	payload, _ := json.Marshal(map[string]any{
		"iss": p.tokenIssuerLocked(), "sub": f.user.Subject, "aud": f.audience, "azp": f.clientID,
		"scope": f.scope, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randomString(),
	})
	return signJWS(p.keys.current, p.keys.current.kid, "at+jwt", payload, false)
}

// refreshFor reports whether a code grant for the request gives a
// refresh token, per the profile's rule.
func (p *Provider) refreshFor(req *pendingAuth) bool {
	switch p.cfg.Profile.Refresh {
	case RefreshAccessTypeOffline:
		return req.accessType == "offline"
	case RefreshAlways:
		return true
	}
	return hasScope(req.scope, "offline_access") &&
		(!p.cfg.StrictOfflineAccess || slices.Contains(req.prompt, "consent"))
}
