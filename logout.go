package bff

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobff/bff/internal/keyset"
	"github.com/gobff/bff/internal/seal"
)

// handleLogout ends the session here (store, cookie, every instance's
// cache), revokes its refresh token at the provider (RFC 7009) when the
// provider offers revocation, and sends the browser to the provider's
// end-session endpoint (RP-Initiated Logout) with id_token_hint, client_id,
// post_logout_redirect_uri and a state checked on the way back. Only POST
// from this origin is a logout.
func (b *BFF) handleLogout(w http.ResponseWriter, r *http.Request) {
	dest := b.cfg.PostLogoutRedirect
	if err := b.cop.Check(r); err != nil {
		b.failTo(w, r, errCSRF, dest)
		return
	}
	s, err := b.liveSession(w, r)
	switch {
	case err == nil:
		ctx := r.Context()
		last, err := b.store.end(ctx, s.key, reasonLogout)
		if err != nil {
			b.failTo(w, r, err, dest) // the store is down: the session is not ended
			return
		}
		if last != nil {
			s = last // a refresh that ended under the lock left newer tokens
		}
		b.sessionCookie(w, "", -1)
		prov := b.provider()
		if prov != nil && prov.revocationURL != "" && s.rec.RefreshToken != "" {
			if err := b.revoke(ctx, prov, s.rec.RefreshToken); err != nil {
				b.log.Warn("bff: refresh token revocation failed; the session is ended here", "sub", s.rec.Subject, "err", err)
			}
		}
		if prov != nil && prov.endSessionURL != "" {
			dest = b.endSessionURL(w, prov, s.rec.IDToken)
		}
		b.log.Info("bff: signed out", "sub", s.rec.Subject)
	default:
		var e *Error
		if errors.As(err, &e) && e.Status != http.StatusUnauthorized {
			b.failTo(w, r, err, dest)
			return
		}
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// logoutState is the state of an RP-initiated logout, sealed in a
// short-lived cookie.
type logoutState struct {
	State   string `json:"s"`
	Created int64  `json:"c"`
}

func (b *BFF) logoutCookieName() string { return b.cfg.CookieName + "-logout" }

func (b *BFF) endSessionURL(w http.ResponseWriter, prov *provider, idToken string) string {
	st := logoutState{State: rand.Text(), Created: b.cfg.Now().UnixMilli()}
	plain, _ := json.Marshal(st)
	name := b.logoutCookieName()
	b.txCookie(w, name, base64.RawURLEncoding.EncodeToString(b.sealer.Seal(nil, seal.PurposeTransaction, plain, []byte(name))),
		b.txMaxAge())
	u, err := url.Parse(prov.endSessionURL)
	if err != nil {
		return b.cfg.PostLogoutRedirect
	}
	q := u.Query()
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("client_id", b.cfg.ClientID)
	q.Set("post_logout_redirect_uri", b.cfg.postLogout)
	q.Set("state", st.State)
	u.RawQuery = q.Encode()
	return u.String()
}

// handleLogoutCallback is where the provider sends the browser after
// logout. It checks the state before redirecting to PostLogoutRedirect.
func (b *BFF) handleLogoutCallback(w http.ResponseWriter, r *http.Request) {
	name := b.logoutCookieName()
	b.txCookie(w, name, "", -1)
	bad := func(cause string) {
		b.failTo(w, r, badRequest("This sign-out response does not match a sign-out from this browser.", errors.New(cause)),
			b.cfg.PostLogoutRedirect)
	}
	raw, ok := cookieValue(r.Header, name)
	if !ok {
		bad("no logout cookie")
		return
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		bad("logout cookie not base64")
		return
	}
	plain, err := b.sealer.Open(nil, seal.PurposeTransaction, sealed, []byte(name))
	var st logoutState
	if err != nil || json.Unmarshal(plain, &st) != nil {
		bad("logout cookie does not open")
		return
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(r.URL.Query().Get("state"))) != 1 {
		bad("logout state mismatch")
		return
	}
	if b.cfg.Now().Sub(time.UnixMilli(st.Created)) > b.cfg.LoginTimeout {
		bad("logout state expired")
		return
	}
	http.Redirect(w, r, b.cfg.PostLogoutRedirect, http.StatusSeeOther)
}

// revoke revokes a refresh token (RFC 7009), bounded by a short timeout.
func (b *BFF) revoke(ctx context.Context, prov *provider, token string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, prov.revocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(b.cfg.ClientID), url.QueryEscape(b.cfg.ClientSecret))
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("revocation request: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation endpoint answered %d", resp.StatusCode)
	}
	return nil
}

// handleBackchannelLogout implements OpenID Connect Back-Channel Logout 1.0:
// a verified, not replayed logout token ends every session of its sid (or
// of its sub when it has no sid). Any invalid token gets 400 and ends
// nothing; a token that cannot be verified yet (the provider's key set is
// unreachable, or a key refetch is rate-limited) gets 503.
func (b *BFF) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	invalid := func(cause error) {
		b.log.Warn("bff: back-channel logout refused", "reason", cause)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		invalid(err)
		return
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" {
		invalid(errors.New("no logout_token"))
		return
	}
	prov := b.provider()
	if prov == nil {
		b.fail(w, r, errNotReady)
		return
	}
	ctx := r.Context()
	vctx, keysErr := keyset.Probe(b.clientContext(ctx))
	lt, err := b.verifyLogoutToken(vctx, prov, raw)
	if err != nil {
		if kerr := keysErr(); kerr != nil {
			// The provider's keys could not be had: nothing is known about
			// the token, so ask for a retry (a 400 would tell the provider
			// the token is bad).
			b.fail(w, r, errUnavailable("The identity provider's key set", kerr))
			return
		}
		invalid(err)
		return
	}
	// Replay: each jti is accepted once while the token is accepted (at
	// most logoutMaxAge after its iat).
	ttl := lt.until.Sub(b.cfg.Now()) + logoutSkew
	jti := lt.Issuer + "\x00" + lt.TokenID
	first, err := b.store.firstUse(ctx, replayJTI, jti, ttl)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if !first {
		invalid(errors.New("logout token jti replayed"))
		return
	}
	var n int
	if lt.SessionID != "" {
		n, err = b.endWhere(ctx, "sid", lt.SessionID, func(s *session) bool {
			return s.rec.SID == lt.SessionID && (lt.Subject == "" || lt.Subject == s.rec.Subject)
		}, reasonBackchannel)
	} else {
		n, err = b.endWhere(ctx, "sub", lt.Subject, nil, reasonBackchannel)
	}
	if err != nil {
		// Not every session could be ended (the store failed): forget the
		// jti, so that the provider's retry of this token is not refused
		// as a replay.
		if ferr := b.store.forget(context.WithoutCancel(ctx), replayJTI, jti); ferr != nil {
			b.log.Warn("bff: back-channel logout failed and its jti could not be forgotten; the provider's retry will be refused", "err", ferr)
		}
		b.fail(w, r, err)
		return
	}
	b.log.Info("bff: back-channel logout", "sub", lt.Subject, "sessions_ended", n)
	w.WriteHeader(http.StatusOK)
}
