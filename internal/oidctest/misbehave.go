package oidctest

import "time"

// Misbehavior lists deliberate deviations from correct behaviour. The zero
// value is correct behaviour. Change it at runtime with Provider.Misbehave;
// Provider.Reset restores the zero value.
type Misbehavior struct {
	// IDTokenIssuer, when set, is the iss claim of every ID token.
	IDTokenIssuer string
	// ExtraAudience adds a second audience to ID tokens.
	ExtraAudience string
	// AZP sets the azp claim (by default azp is the client ID).
	AZP string
	// OmitAZP omits the azp claim.
	OmitAZP bool
	// WrongNonce puts a different nonce into login ID tokens; OmitNonce
	// leaves it out.
	WrongNonce, OmitNonce bool
	// OmitSub and OmitIat leave those claims out of ID tokens.
	OmitSub, OmitIat bool
	// BadAtHash puts an at_hash that does not match the access token.
	BadAtHash bool
	// OmitAtHash leaves at_hash out.
	OmitAtHash bool
	// ExpiredIDToken issues ID tokens whose exp is in the past.
	ExpiredIDToken bool
	// SignWithUnknownKey signs ID tokens with a key that is not in the JWKS
	// (same kid as the published key: a bad signature).
	SignWithUnknownKey bool
	// AlgNone issues unsigned ("alg":"none") ID tokens.
	AlgNone bool
	// UserinfoSub makes userinfo return this sub.
	UserinfoSub string
	// IssParam controls the RFC 9207 iss parameter of authorization
	// responses: "" = correct, "-" = omitted, otherwise that value.
	IssParam string
	// NoIssParamSupport makes discovery advertise
	// authorization_response_iss_parameter_supported false and omits the iss
	// parameter (unless IssParam sets a value).
	NoIssParamSupport bool
	// NoS256 omits code_challenge_methods_supported from discovery and
	// makes PKCE optional at /authorize (still verified when sent).
	NoS256 bool
	// NoRevocation, NoEndSession and NoUserinfo omit those endpoints from
	// discovery (the endpoints keep working).
	NoRevocation, NoEndSession, NoUserinfo bool
	// RefreshIDTokenSub and RefreshIDTokenIssuer set sub / iss of ID tokens
	// issued by the refresh grant.
	RefreshIDTokenSub    string
	RefreshIDTokenIssuer string
	// RefreshOmitIDToken issues no ID token on refresh.
	RefreshOmitIDToken bool
	// RefreshNoRotate returns no new refresh token on refresh; the
	// presented one stays valid.
	RefreshNoRotate bool
	// TokenError makes refresh grants answer 400 with this OAuth error code
	// (e.g. "invalid_grant"). Nothing is consumed or revoked.
	TokenError string
	// TokenStatus makes refresh grants answer this HTTP status (e.g. 500,
	// 503) with a JSON body {"error":"server_error"} (or
	// "temporarily_unavailable" for 503). Nothing is consumed.
	TokenStatus int
	// TokenDelay delays every token response (respects the request
	// context).
	TokenDelay time.Duration
	// GarbageJSON makes token, discovery and userinfo answer 200 with a
	// non-JSON body.
	GarbageJSON bool
	// HugeBody makes the token endpoint stream a 50 MB JSON-looking body.
	HugeBody bool
	// UnparseableJWK adds a secp256k1 EC key without "alg" (which go-jose
	// cannot parse) in front of the usable keys of the JWKS.
	UnparseableJWK bool
	// NoRefreshToken never issues refresh tokens.
	NoRefreshToken bool
	// AccessTokenTTL overrides Config.AccessTokenTTL for newly issued
	// access tokens (0 = config).
	AccessTokenTTL time.Duration
	// NoExpiresIn omits expires_in from token responses (an access token
	// whose lifetime the client is not told).
	NoExpiresIn bool
	// DiscoveryDown makes discovery answer 503.
	DiscoveryDown bool
	// Discovery sets members of the discovery document (such as
	// "userinfo_endpoint": "http://idp.example/userinfo").
	Discovery map[string]any
	// IgnoreACR ignores requested acr values (acr_values and the claims
	// parameter): every sign-in is ACRBasic.
	IgnoreACR bool
	// IgnoreMaxAge makes prompt=none sign a browser in with an OP session
	// older than max_age.
	IgnoreMaxAge bool
	// AuthTimeAgo puts auth_time this long before the real authentication
	// into ID tokens (a provider reporting an old sign-in).
	AuthTimeAgo time.Duration
	// OmitAuthTime leaves auth_time out of ID tokens.
	OmitAuthTime bool
	// NoClaimsParameter makes discovery advertise
	// claims_parameter_supported false (the parameter is still honoured).
	NoClaimsParameter bool
}
