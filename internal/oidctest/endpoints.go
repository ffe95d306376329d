package oidctest

import (
	"net/http"
	"strings"
	"time"
)

func (p *Provider) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	p.discoveryFetches.Add(1)
	mb := p.misbehavior()
	if mb.DiscoveryDown {
		http.Error(w, "discovery unavailable", http.StatusServiceUnavailable)
		return
	}
	if mb.GarbageJSON {
		Garbage(w, nil)
		return
	}
	d := p.discovery(mb)
	p.applyProfile(d)
	for k, v := range mb.Discovery {
		d[k] = v
	}
	writeJSON(w, http.StatusOK, d)
}

// discovery is the document before the profile and mb.Discovery change it.
func (p *Provider) discovery(mb Misbehavior) map[string]any {
	iss := p.Issuer()
	d := map[string]any{
		"issuer":                                           p.discoveryIssuer(),
		"authorization_endpoint":                           iss + "/authorize",
		"token_endpoint":                                   iss + "/token",
		"userinfo_endpoint":                                iss + "/userinfo",
		"jwks_uri":                                         iss + "/jwks",
		"revocation_endpoint":                              iss + "/revoke",
		"introspection_endpoint":                           iss + "/introspect",
		"end_session_endpoint":                             iss + "/end-session",
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"grant_types_supported":                            []string{"authorization_code", "refresh_token"},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            []string{"RS256", "ES256"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"token_endpoint_auth_methods_supported":            p.authMethods(),
		"revocation_endpoint_auth_methods_supported":       p.authMethods(),
		"introspection_endpoint_auth_methods_supported":    p.authMethods(),
		"token_endpoint_auth_signing_alg_values_supported": p.assertionAlgs(),
		"acr_values_supported":                             []string{ACRBasic, ACRStrong},
		"claims_parameter_supported":                       !mb.NoClaimsParameter,
		"scopes_supported":                                 []string{"openid", "profile", "email", "offline_access"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp",
			"at_hash", "acr", "amr", "name", "preferred_username", "email", "email_verified"},
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"authorization_response_iss_parameter_supported": !mb.NoIssParamSupport,
	}
	if p.cfg.PAR || p.cfg.RequirePAR {
		d["pushed_authorization_request_endpoint"] = iss + "/par"
		d["require_pushed_authorization_requests"] = p.cfg.RequirePAR
	}
	if mb.NoS256 {
		delete(d, "code_challenge_methods_supported")
	}
	if mb.NoRevocation {
		delete(d, "revocation_endpoint")
		delete(d, "revocation_endpoint_auth_methods_supported")
	}
	if mb.NoEndSession {
		delete(d, "end_session_endpoint")
	}
	if mb.NoUserinfo {
		delete(d, "userinfo_endpoint")
	}
	return d
}

func (p *Provider) handleJWKS(w http.ResponseWriter, r *http.Request) {
	p.jwksFetches.Add(1)
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Write(p.jwksJSON(p.misbehavior().UnparseableJWK))
}

// bearerToken extracts an RFC 6750 bearer token from the Authorization
// header or, for POST, the access_token form field.
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if r.Method == http.MethodPost && r.ParseForm() == nil {
		return r.PostForm.Get("access_token")
	}
	return ""
}

func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p.userinfoCalls.Add(1)
	tok := bearerToken(r)
	now := p.now()
	p.mu.Lock()
	f, ok := p.accessFamilyLocked(tok, now)
	var u User
	if ok {
		u = f.user
	}
	p.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "")
		return
	}
	mb := p.misbehavior()
	if mb.GarbageJSON {
		Garbage(w, nil)
		return
	}
	c := u.claims()
	if mb.UserinfoSub != "" {
		c["sub"] = mb.UserinfoSub
	}
	writeJSON(w, http.StatusOK, c)
}

// accessFamilyLocked returns the family of a currently valid access token.
func (p *Provider) accessFamilyLocked(tok string, now time.Time) (*family, bool) {
	if tok == "" {
		return nil, false
	}
	at, ok := p.access.get(tok, now)
	if !ok || at.revoked {
		return nil, false
	}
	f, ok := p.families.get(at.familyID, now)
	if !ok || f.revoked {
		return nil, false
	}
	return f, true
}

func (p *Provider) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if !p.clientPOST(w, r) {
		return
	}
	p.revocations.Add(1)
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token missing")
		return
	}
	now := p.now()
	p.mu.Lock()
	if rt, ok := p.refresh.get(tok, now); ok {
		p.revokeFamilyLocked(rt.familyID)
	} else if at, ok := p.access.get(tok, now); ok {
		at.revoked = true
	}
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (p *Provider) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if !p.clientPOST(w, r) {
		return
	}
	tok := r.PostForm.Get("token")
	now := p.now()
	resp := map[string]any{"active": false}
	p.mu.Lock()
	if at, ok := p.access.get(tok, now); ok && !at.revoked {
		if f, ok := p.families.get(at.familyID, now); ok && !f.revoked {
			resp = map[string]any{
				"active": true, "token_type": "Bearer", "scope": at.scope, "client_id": f.clientID,
				"sub": f.user.Subject, "username": f.user.Username, "iss": p.tokenIssuerLocked(), "aud": f.clientID,
				"iat": at.iat.Unix(), "exp": at.exp.Unix(), "sid": f.sid,
			}
		}
	} else if rt, ok := p.refresh.get(tok, now); ok && !rt.used {
		if f, ok := p.families.get(rt.familyID, now); ok && !f.revoked {
			resp = map[string]any{
				"active": true, "token_type": "refresh_token", "scope": f.scope, "client_id": f.clientID,
				"sub": f.user.Subject, "iss": p.tokenIssuerLocked(), "iat": rt.iat.Unix(), "exp": rt.exp.Unix(), "sid": f.sid,
			}
		}
	}
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// AccessTokenInfo reports whether an access token is currently valid
// (issued, unexpired, unrevoked) and whose it is.
func (p *Provider) AccessTokenInfo(token string) (sub string, ok bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.accessFamilyLocked(token, now)
	if !ok {
		return "", false
	}
	return f.user.Subject, true
}

// RefreshTokenValid reports whether a refresh token could be redeemed now
// (issued, unexpired, not yet used, family not revoked).
func (p *Provider) RefreshTokenValid(rt string) bool {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.refresh.get(rt, now)
	if !ok || t.used {
		return false
	}
	f, ok := p.families.get(t.familyID, now)
	return ok && !f.revoked
}

// FamilyRevoked reports whether any token family (the tokens descending
// from one login) of sub has been revoked: by refresh token or code reuse,
// revocation of a refresh token, end of the OP session or RevokeSubject.
func (p *Provider) FamilyRevoked(sub string) bool {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	revoked := false
	p.families.each(now, func(_ string, f *family) {
		if f.user.Subject == sub && f.revoked {
			revoked = true
		}
	})
	return revoked
}

// RevokeSubject revokes every token family of sub (as an administrator
// would); subsequent refreshes answer invalid_grant.
func (p *Provider) RevokeSubject(sub string) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.families.each(now, func(_ string, f *family) {
		if f.user.Subject == sub {
			f.revoked = true
		}
	})
}
