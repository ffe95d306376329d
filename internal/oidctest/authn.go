package oidctest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The authentication context classes the provider knows, weakest first.
// A sign-in that asks for ACRStrong (acr_values, or an essential acr in the
// claims parameter) gets it, as if the user had passed a second factor;
// every other sign-in gets ACRBasic.
const (
	ACRBasic  = "urn:oidctest:acr:basic"
	ACRStrong = "urn:oidctest:acr:strong"
)

// acrAMR is the amr claim of each acr value.
var acrAMR = map[string][]string{ACRBasic: {"pwd"}, ACRStrong: {"pwd", "otp"}}

// SessionCookie names the provider's browser session cookie. It holds the
// OP session ID (sid), which prompt=none needs: the provider signs a
// browser in silently only while that session lives.
const SessionCookie = "oidctest_session"

// authn is one authentication of a user: when, and how strongly.
type authn struct {
	at  time.Time
	acr string
	amr []string
}

// newAuthn is an authentication now, at the strongest level requested that
// the provider knows (or ACRBasic).
func newAuthn(now time.Time, requested []string, mb Misbehavior) authn {
	acr := ACRBasic
	if !mb.IgnoreACR {
		for _, v := range requested {
			if _, ok := acrAMR[v]; ok {
				acr = v
				break
			}
		}
	}
	return authn{at: now, acr: acr, amr: acrAMR[acr]}
}

// satisfies reports whether a is recent enough for maxAge (< 0: any) and of
// one of the requested levels (none requested: any).
func (a authn) satisfies(now time.Time, maxAge int64, requested []string, mb Misbehavior) bool {
	if maxAge >= 0 && now.Sub(a.at) > time.Duration(maxAge)*time.Second {
		return false
	}
	if len(requested) == 0 || mb.IgnoreACR {
		return true
	}
	return slices.Contains(requested, a.acr)
}

// requestedACR is the acr values an authorization request asks for: its
// acr_values, or the values of an acr claim in its claims parameter (OIDC
// Core §5.5.1.1).
func requestedACR(q map[string][]string) []string {
	first := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if c := first("claims"); c != "" {
		var req struct {
			IDToken map[string]struct {
				Values []string `json:"values"`
				Value  string   `json:"value"`
			} `json:"id_token"`
		}
		if json.Unmarshal([]byte(c), &req) == nil {
			if a, ok := req.IDToken["acr"]; ok {
				if a.Value != "" {
					return []string{a.Value}
				}
				if len(a.Values) > 0 {
					return a.Values
				}
			}
		}
	}
	return strings.Fields(first("acr_values"))
}

// parseMaxAge reads max_age: -1 when absent, ok false when malformed.
func parseMaxAge(s string) (int64, bool) {
	if s == "" {
		return -1, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

// browserSession returns the live OP session named by the request's
// session cookie, if any.
func (p *Provider) browserSession(r *http.Request, now time.Time) (string, *opSession, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return "", nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions.get(c.Value, now)
	if !ok || s.ended {
		return "", nil, false
	}
	return c.Value, s, true
}

// setSessionCookie gives the browser the OP session sid (or, with sid
// "", clears it).
func (p *Provider) setSessionCookie(w http.ResponseWriter, sid string) {
	c := &http.Cookie{Name: SessionCookie, Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(p.Issuer(), "https://")}
	if sid == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// silentLogin answers a prompt=none request: with a live OP session that
// satisfies the request, the browser goes back with a code and no page;
// otherwise with login_required (no session, or too old) or
// interaction_required (a stronger level is asked for).
func (p *Provider) silentLogin(w http.ResponseWriter, r *http.Request, pa *pendingAuth, mb Misbehavior) {
	now := p.now()
	sid, s, ok := p.browserSession(r, now)
	switch {
	case !ok:
		p.redirectError(w, r, pa, mb, "login_required", "no session at the provider")
		return
	case !s.auth.satisfies(now, pa.maxAge, nil, mb) && !mb.IgnoreMaxAge:
		p.redirectError(w, r, pa, mb, "login_required", "the session is older than max_age")
		return
	case !s.auth.satisfies(now, -1, pa.acr, mb):
		p.redirectError(w, r, pa, mb, "interaction_required", "a stronger authentication is required")
		return
	}
	p.mu.Lock()
	u, found := p.userLocked(s.sub)
	p.mu.Unlock()
	if !found {
		p.redirectError(w, r, pa, mb, "login_required", "the session's user is gone")
		return
	}
	p.issueCode(w, r, pa, u, sid, s.auth)
}

// userLocked finds a user by subject. Caller holds p.mu.
func (p *Provider) userLocked(sub string) (User, bool) {
	if p.defaultUser.Subject == sub {
		return p.defaultUser, true
	}
	for _, u := range p.users {
		if u.Subject == sub {
			return u, true
		}
	}
	return User{}, false
}
