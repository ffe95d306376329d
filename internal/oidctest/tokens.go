package oidctest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// pendingAuth is a validated authorization request awaiting sign-in.
type pendingAuth struct {
	clientID, redirectURI, state, nonce, scope string
	codeChallenge, loginHint                   string
	accessType, audience                       string // Google's access_type, Auth0's audience
	prompt                                     []string
	maxAge                                     int64    // -1: none
	acr                                        []string // requested acr values
}

// authCode is an issued authorization code.
type authCode struct {
	req      pendingAuth
	user     User
	sid      string
	auth     authn
	used     bool
	familyID string // set at first redemption
}

// family groups every token descending from one login (one code).
type family struct {
	clientID string
	user     User
	sid      string
	scope    string
	audience string // the authorization request's (Profile.AudienceJWT)
	auth     authn
	revoked  bool
}

type accessToken struct {
	familyID string
	scope    string
	iat, exp time.Time
	revoked  bool
}

type refreshToken struct {
	familyID string
	iat, exp time.Time
	used     bool
}

// opSession is the provider's session created by one login.
type opSession struct {
	sub   string
	auth  authn
	ended bool
}

func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	if !p.clientPOST(w, r) {
		return
	}
	mb := p.misbehavior()
	if err := sleepCtx(r.Context(), mb.TokenDelay); err != nil {
		return
	}
	grant := r.PostForm.Get("grant_type")
	switch grant {
	case "authorization_code":
		p.codeGrants.Add(1)
	case "refresh_token":
		p.refreshGrants.Add(1)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
		return
	}
	switch {
	case mb.GarbageJSON:
		Garbage(w, nil)
		return
	case mb.HugeBody:
		Huge(w, nil)
		return
	}
	if grant == "refresh_token" {
		switch {
		case mb.TokenStatus != 0:
			code := "server_error"
			if mb.TokenStatus == http.StatusServiceUnavailable {
				code = "temporarily_unavailable"
			}
			oauthError(w, mb.TokenStatus, code, "misbehaving on purpose")
			return
		case mb.TokenError != "":
			oauthError(w, http.StatusBadRequest, mb.TokenError, "misbehaving on purpose")
			return
		}
		p.refreshGrant(w, r, mb)
		return
	}
	p.codeGrant(w, r, mb)
}

func (p *Provider) codeGrant(w http.ResponseWriter, r *http.Request, mb Misbehavior) {
	code := r.PostForm.Get("code")
	verifier := r.PostForm.Get("code_verifier")
	now := p.now()
	p.mu.Lock()
	c, ok := p.codes.get(code, now)
	switch {
	case !ok:
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or expired code")
		return
	case c.used:
		// RFC 6749 §4.1.2: revoke tokens previously issued for this code.
		p.revokeFamilyLocked(c.familyID)
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code already used")
		return
	case r.PostForm.Get("redirect_uri") != c.req.redirectURI:
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri mismatch")
		return
	case c.req.codeChallenge == "" && verifier != "":
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier without code_challenge")
		return
	case c.req.codeChallenge != "" && !pkceMatches(verifier, c.req.codeChallenge):
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
		return
	}
	c.used = true
	famID := randomString()
	c.familyID = famID
	f := &family{clientID: c.req.clientID, user: c.user, sid: c.sid, scope: c.req.scope, audience: c.req.audience,
		auth: c.auth}
	p.families.put(famID, f, now.Add(p.familyTTL(mb)), now)
	withRefresh := p.refreshFor(&c.req) && !mb.NoRefreshToken
	resp, idClaims := p.issueLocked(famID, f, mb, now, withRefresh)
	p.mu.Unlock()

	if idClaims != nil {
		switch {
		case mb.OmitNonce || c.req.nonce == "":
		case mb.WrongNonce:
			idClaims["nonce"] = "wrong-" + randomString()
		default:
			idClaims["nonce"] = c.req.nonce
		}
		if mb.IDTokenIssuer != "" {
			idClaims["iss"] = mb.IDTokenIssuer
		}
		resp["id_token"] = p.signIDToken(idClaims, mb)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) refreshGrant(w http.ResponseWriter, r *http.Request, mb Misbehavior) {
	rtStr := r.PostForm.Get("refresh_token")
	now := p.now()
	p.mu.Lock()
	rt, ok := p.refresh.get(rtStr, now)
	if !ok {
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or expired refresh token")
		return
	}
	f, ok := p.families.get(rt.familyID, now)
	if !ok || f.revoked {
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked")
		return
	}
	if rt.used {
		p.reuses.Add(1)
		p.revokeFamilyLocked(rt.familyID)
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token reuse detected; token family revoked")
		return
	}
	rotate := !mb.RefreshNoRotate && !mb.NoRefreshToken && !p.cfg.Profile.NoRotation
	if rotate {
		rt.used = true
	}
	p.families.setExpiry(rt.familyID, now.Add(p.familyTTL(mb)))
	p.sessions.setExpiry(f.sid, now.Add(p.familyTTL(mb)))
	resp, idClaims := p.issueLocked(rt.familyID, f, mb, now, rotate)
	p.mu.Unlock()

	if idClaims != nil && !mb.RefreshOmitIDToken {
		if mb.IDTokenIssuer != "" {
			idClaims["iss"] = mb.IDTokenIssuer
		}
		if mb.RefreshIDTokenIssuer != "" {
			idClaims["iss"] = mb.RefreshIDTokenIssuer
		}
		if mb.RefreshIDTokenSub != "" {
			idClaims["sub"] = mb.RefreshIDTokenSub
		}
		resp["id_token"] = p.signIDToken(idClaims, mb)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) familyTTL(mb Misbehavior) time.Duration {
	return max(p.cfg.RefreshTokenTTL, p.cfg.AccessTokenTTL, mb.AccessTokenTTL, p.cfg.IDTokenTTL)
}

// issueLocked creates an access token (and a refresh token if withRefresh)
// for the family, and returns the token response plus the ID token claims
// (nil without the openid scope). Caller holds p.mu.
func (p *Provider) issueLocked(famID string, f *family, mb Misbehavior, now time.Time, withRefresh bool) (map[string]any, map[string]any) {
	ttl := p.cfg.AccessTokenTTL
	if mb.AccessTokenTTL > 0 {
		ttl = mb.AccessTokenTTL
	}
	at := p.accessTokenLocked(f, now, ttl)
	p.access.put(at, &accessToken{familyID: famID, scope: f.scope, iat: now, exp: now.Add(ttl)}, now.Add(ttl), now)
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int64(ttl / time.Second),
		"scope":        f.scope,
	}
	if mb.NoExpiresIn {
		delete(resp, "expires_in")
	}
	if withRefresh {
		rt := randomString() + randomString()
		exp := now.Add(p.cfg.RefreshTokenTTL)
		p.refresh.put(rt, &refreshToken{familyID: famID, iat: now, exp: exp}, exp, now)
		resp["refresh_token"] = rt
		resp["refresh_expires_in"] = int64(p.cfg.RefreshTokenTTL / time.Second)
	}
	if !hasScope(f.scope, "openid") {
		return resp, nil
	}
	return resp, p.idClaimsLocked(f, at, mb, now)
}

// idClaimsLocked builds ID token claims (without nonce) per the
// misbehaviour. Caller holds p.mu.
func (p *Provider) idClaimsLocked(f *family, at string, mb Misbehavior, now time.Time) map[string]any {
	c := f.user.claims()
	c["iss"] = p.tokenIssuerLocked()
	if p.cfg.Profile.Tenant != "" {
		c["tid"] = p.cfg.Profile.Tenant
	}
	c["aud"] = f.clientID
	c["iat"] = now.Unix()
	c["exp"] = now.Add(p.cfg.IDTokenTTL).Unix()
	c["auth_time"] = f.auth.at.Add(-mb.AuthTimeAgo).Unix()
	c["acr"] = f.auth.acr
	c["amr"] = f.auth.amr
	c["sid"] = f.sid
	c["azp"] = f.clientID
	c["at_hash"] = atHash(at)
	misbehaveIDClaims(c, f.clientID, mb, now)
	return c
}

// misbehaveIDClaims changes an ID token's claims as mb asks.
func misbehaveIDClaims(c map[string]any, clientID string, mb Misbehavior, now time.Time) {
	if mb.ExtraAudience != "" {
		c["aud"] = []string{clientID, mb.ExtraAudience}
	}
	if mb.AZP != "" {
		c["azp"] = mb.AZP
	}
	if mb.OmitAZP {
		delete(c, "azp")
	}
	if mb.OmitSub {
		delete(c, "sub")
	}
	if mb.OmitIat {
		delete(c, "iat")
	}
	if mb.BadAtHash {
		c["at_hash"] = atHash("not-the-access-token")
	}
	if mb.OmitAtHash {
		delete(c, "at_hash")
	}
	if mb.OmitAuthTime {
		delete(c, "auth_time")
	}
	if mb.ExpiredIDToken {
		c["exp"] = now.Add(-time.Hour).Unix()
		if !mb.OmitIat {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
		}
	}
}

func (p *Provider) signIDToken(claims map[string]any, mb Misbehavior) string {
	return p.SignJWT(claims, SignOptions{AlgNone: mb.AlgNone, UnknownKey: mb.SignWithUnknownKey})
}

// revokeFamilyLocked revokes every token of a family. Caller holds p.mu.
func (p *Provider) revokeFamilyLocked(famID string) {
	if famID == "" {
		return
	}
	if f, ok := p.families.m[famID]; ok {
		f.v.revoked = true
	}
}

func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, c := range verifier {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

func hasScope(scope, s string) bool { return slices.Contains(strings.Fields(scope), s) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	v := map[string]string{"error": code}
	if desc != "" {
		v["error_description"] = desc
	}
	writeJSON(w, status, v)
}

// Garbage answers 200 with a body that is not the JSON it claims to be (the
// GarbageJSON misbehaviour), for a test's own replacement of an endpoint.
func Garbage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("<html><body>this is not JSON {"))
}

// hugeBodySize is the size of the HugeBody response.
const hugeBodySize = 50 << 20

// Huge streams a 50 MB JSON-looking body (the HugeBody misbehaviour), for a
// test's own replacement of an endpoint.
func Huge(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte(`{"access_token":"`)); err != nil {
		return
	}
	chunk := []byte(strings.Repeat("a", 64<<10))
	for n := 0; n < hugeBodySize; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	w.Write([]byte(`","token_type":"Bearer"}`))
}
