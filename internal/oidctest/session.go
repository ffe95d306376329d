package oidctest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// handleEndSession implements OpenID Connect RP-Initiated Logout 1.0. The
// provider keeps no browser cookie, so the OP session to end is the one
// named by the sid of id_token_hint (expired hints are accepted; the
// signature and issuer are checked).
func (p *Provider) handleEndSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.renderMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		return
	}
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Bad request", "")
		return
	}
	hint := r.Form.Get("id_token_hint")
	clientID := r.Form.Get("client_id")
	redirect := r.Form.Get("post_logout_redirect_uri")
	var sid string
	if hint != "" {
		claims, err := p.verifyOwnJWT(hint)
		if err != nil || !audContains(claims["aud"], p.cfg.ClientID) {
			p.renderMessage(w, http.StatusBadRequest, "Invalid logout request", "The id_token_hint is not valid.")
			return
		}
		sid, _ = claims["sid"].(string)
	}
	if clientID != "" && clientID != p.cfg.ClientID {
		p.renderMessage(w, http.StatusBadRequest, "Invalid logout request", "Unknown client_id.")
		return
	}
	if redirect != "" && ((hint == "" && clientID == "") || !p.redirectAllowed(redirect)) {
		p.renderMessage(w, http.StatusBadRequest, "Invalid logout request",
			"The post_logout_redirect_uri is not registered for this client.")
		return
	}
	p.endSessions.Add(1)
	if sid != "" {
		_ = p.EndSession(r.Context(), sid)
	}
	// The browser's own OP session ends too, hint or not.
	if c, err := r.Cookie(SessionCookie); err == nil {
		if c.Value != sid {
			_ = p.EndSession(r.Context(), c.Value)
		}
		p.setSessionCookie(w, "")
	}
	if redirect == "" {
		p.renderMessage(w, http.StatusOK, "Signed out", "You have been signed out of the development identity provider.")
		return
	}
	u, _ := url.Parse(redirect)
	if st := r.Form.Get("state"); st != "" {
		q := u.Query()
		q.Set("state", st)
		u.RawQuery = q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func audContains(aud any, clientID string) bool {
	switch a := aud.(type) {
	case string:
		return a == clientID
	case []any:
		for _, v := range a {
			if v == clientID {
				return true
			}
		}
	}
	return false
}

// EndSession ends the OP session sid: its token families are revoked and,
// if Config.BackchannelLogoutURI is set, a back-channel logout token (sub
// and sid) is delivered. It returns the delivery error, if any. Ending an
// unknown or already ended session does nothing.
func (p *Provider) EndSession(ctx context.Context, sid string) error {
	now := p.now()
	p.mu.Lock()
	s, ok := p.sessions.get(sid, now)
	if !ok || s.ended {
		p.mu.Unlock()
		return nil
	}
	s.ended = true
	sub := s.sub
	p.families.each(now, func(_ string, f *family) {
		if f.sid == sid {
			f.revoked = true
		}
	})
	p.mu.Unlock()
	if p.cfg.BackchannelLogoutURI == "" {
		return nil
	}
	return p.SendBackchannelLogout(ctx, p.LogoutToken(sub, sid, nil))
}

// SendBackchannelLogout POSTs logoutToken to Config.BackchannelLogoutURI.
func (p *Provider) SendBackchannelLogout(ctx context.Context, logoutToken string) error {
	if p.cfg.BackchannelLogoutURI == "" {
		return fmt.Errorf("oidctest: no BackchannelLogoutURI configured")
	}
	body := url.Values{"logout_token": {logoutToken}}.Encode()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		p.cfg.BackchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("oidctest: back-channel logout: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("oidctest: back-channel logout: status %d", resp.StatusCode)
	}
	p.backchannelLogouts.Add(1)
	return nil
}

// Sessions returns the sids of the active (not ended) OP sessions of sub,
// oldest first. Every successful sign-in creates a new session.
func (p *Provider) Sessions(sub string) []string {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var sids []string
	p.sessions.each(now, func(sid string, s *opSession) {
		if s.sub == sub && !s.ended {
			sids = append(sids, sid)
		}
	})
	return sids
}

// handleCognitoLogout imitates Amazon Cognito's /logout (Profile
// CognitoLogout): client_id and a registered logout_uri, the browser's
// session ends, and the browser goes to logout_uri as given (Cognito
// passes no state back).
func (p *Provider) handleCognitoLogout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	logoutURI := q.Get("logout_uri")
	if q.Get("client_id") != p.cfg.ClientID || logoutURI == "" || !p.redirectAllowed(logoutURI) {
		p.renderMessage(w, http.StatusBadRequest, "Invalid logout request",
			"client_id and a registered logout_uri are required.")
		return
	}
	p.endSessions.Add(1)
	if c, err := r.Cookie(SessionCookie); err == nil {
		_ = p.EndSession(r.Context(), c.Value)
		p.setSessionCookie(w, "")
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, logoutURI, http.StatusFound)
}
