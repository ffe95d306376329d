package bff

import (
	"context"
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

// ProviderLogout is what POST /logout does at the provider
// (Options.ProviderLogout).
type ProviderLogout int

const (
	// ProviderLogoutRedirectBack sends the browser to the provider's
	// end-session endpoint (RP-Initiated Logout) with id_token_hint,
	// client_id, post_logout_redirect_uri and a state checked on the way
	// back to PostLogoutRedirect.
	ProviderLogoutRedirectBack ProviderLogout = iota
	// ProviderLogoutNoReturn sends the browser to the end-session endpoint
	// with id_token_hint and client_id only, for clients that cannot
	// register a post-logout redirect URI: the user stays on the
	// provider's page.
	ProviderLogoutNoReturn
	// ProviderLogoutSkip does not involve the provider's session: the
	// browser goes to PostLogoutRedirect and stays signed in at the
	// provider.
	ProviderLogoutSkip
	// ProviderLogoutCognito sends the browser to Amazon Cognito's own
	// logout endpoint (Cognito advertises no end_session_endpoint): /logout
	// on the authorization endpoint's host, with client_id and logout_uri
	// BaseURL+PostLogoutRedirect, which must be one of the app client's
	// allowed sign-out URLs. Cognito then sends the browser there.
	ProviderLogoutCognito
)

// handleLogout ends the session here (store, cookie, every instance's
// cache), revokes its refresh token at the provider (RFC 7009) when the
// provider offers revocation, and, per Options.ProviderLogout, sends the
// browser to the provider's end-session endpoint (RP-Initiated Logout).
// Only POST from this origin is a logout.
func (b *BFF) handleLogout(w http.ResponseWriter, r *http.Request) {
	dest := b.cfg.PostLogoutRedirect
	if !b.sameOrigin(r) {
		b.failTo(w, r, errCSRF, dest)
		return
	}
	s, err := b.liveSession(w, r)
	switch {
	case err == nil:
		ctx := r.Context()
		last, err := b.store.end(ctx, s.key, endLogout)
		if err != nil {
			b.failTo(w, r, err, dest) // not ended, or not yet on a replica: the user retries
			return
		}
		if last != nil {
			s = last // a refresh that ended under the lock left newer tokens
		}
		b.tel.sessionEnded(ctx, endLogout, last)
		b.sessionCookie(w, "", -1)
		prov := b.provider()
		if prov != nil && prov.revocationURL != "" && s.rec.RefreshToken != "" {
			if err := b.revoke(ctx, prov, s.rec.RefreshToken); err != nil {
				b.log.WarnContext(ctx, "bff: refresh token revocation failed; the session is ended here", b.subject(s.rec.Subject), "err", err)
			}
		}
		if u := b.providerLogoutURL(prov, s.rec.IDToken); u != "" {
			dest = u
		}
		b.log.InfoContext(ctx, "bff: signed out", b.subject(s.rec.Subject))
	case err == errNoSession:
		// Perhaps ended by a first try that no replica confirmed (503):
		// say "signed out" only once a replica has the end.
		if err := b.store.confirm(r.Context()); err != nil {
			w.Header().Del("Set-Cookie") // keep the cookie for the retry
			b.failTo(w, r, err, dest)
			return
		}
	default:
		var e *Error
		if errors.As(err, &e) && e.Status != http.StatusUnauthorized {
			b.failTo(w, r, err, dest)
			return
		}
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// logoutState is the state of an RP-initiated logout: sealed (so only
// bff makes one), short-lived and single use, carried in the URL alone.
// No cookie is needed, so none is left behind when the provider never
// sends the browser back; nor is the state bound to the browser, which
// does not matter: the way back only redirects to PostLogoutRedirect.
type logoutState struct {
	Created int64 `json:"c"` // Unix milliseconds
}

// logoutStateAD binds a sealed logout state to its purpose.
var logoutStateAD = []byte("bff logout state")

// providerLogoutURL is where sign-out sends the browser at the provider,
// per Options.ProviderLogout, or "" for nowhere.
func (b *BFF) providerLogoutURL(prov *provider, idToken string) string {
	switch {
	case prov == nil || b.cfg.ProviderLogout == ProviderLogoutSkip:
		return ""
	case b.cfg.ProviderLogout == ProviderLogoutCognito:
		return b.cognitoLogoutURL(prov)
	case prov.endSessionURL == "":
		return ""
	}
	return b.endSessionURL(prov, idToken)
}

// cognitoLogoutURL is Cognito's logout endpoint: /logout on the host of
// its authorization endpoint, with client_id and logout_uri (Cognito takes
// no id_token_hint and sends no state back: the way back is a fixed page
// of this app).
func (b *BFF) cognitoLogoutURL(prov *provider) string {
	u, err := url.Parse(prov.oauth.Endpoint.AuthURL)
	if err != nil {
		return ""
	}
	q := url.Values{"client_id": {b.cfg.ClientID}, "logout_uri": {b.cfg.base.String() + b.cfg.PostLogoutRedirect}}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/logout", RawQuery: q.Encode()}).String()
}

// endSessionURL is the provider's end-session endpoint with id_token_hint
// and client_id, and (unless ProviderLogoutNoReturn) the
// post_logout_redirect_uri and a state.
func (b *BFF) endSessionURL(prov *provider, idToken string) string {
	u, err := url.Parse(prov.endSessionURL)
	if err != nil {
		return b.cfg.PostLogoutRedirect
	}
	q := u.Query()
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("client_id", b.cfg.ClientID)
	if b.cfg.ProviderLogout == ProviderLogoutRedirectBack {
		plain, _ := json.Marshal(logoutState{Created: b.cfg.Now().UnixMilli()})
		q.Set("post_logout_redirect_uri", b.cfg.postLogout)
		q.Set("state", base64.RawURLEncoding.EncodeToString(b.sealer.Seal(nil, seal.PurposeTransaction, plain, logoutStateAD)))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// handleLogoutCallback is where the provider sends the browser after
// logout. It checks the state (sealed by bff, not expired, first use)
// before redirecting to PostLogoutRedirect.
func (b *BFF) handleLogoutCallback(w http.ResponseWriter, r *http.Request) {
	bad := func(cause string) {
		b.failTo(w, r, badRequest("This sign-out response does not match a sign-out from this app.", errors.New(cause)),
			b.cfg.PostLogoutRedirect)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(r.URL.Query().Get("state"))
	if err != nil || len(sealed) == 0 {
		bad("logout state missing or not base64")
		return
	}
	plain, err := b.sealer.Open(nil, seal.PurposeTransaction, sealed, logoutStateAD)
	var st logoutState
	if err != nil || json.Unmarshal(plain, &st) != nil {
		bad("logout state does not open")
		return
	}
	if age := b.cfg.Now().Sub(time.UnixMilli(st.Created)); age > b.cfg.LoginTimeout || age < -time.Minute {
		bad("logout state expired")
		return
	}
	first, err := b.store.firstUse(r.Context(), replayLogout, r.URL.Query().Get("state"), b.cfg.LoginTimeout+time.Minute)
	if err != nil {
		b.failTo(w, r, err, b.cfg.PostLogoutRedirect)
		return
	}
	if !first {
		bad("logout state replayed")
		return
	}
	http.Redirect(w, r, b.cfg.PostLogoutRedirect, http.StatusSeeOther)
}

// revoke revokes a refresh token (RFC 7009), bounded by a short timeout.
func (b *BFF) revoke(ctx context.Context, prov *provider, token string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	authorization, err := b.credentials(prov, form)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, prov.revocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
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
// endLogoutTokenSessions ends the sessions a verified logout token names:
// those of its sid (and sub, when given), or else all of its sub's.
func (b *BFF) endLogoutTokenSessions(ctx context.Context, lt *logoutToken) (int, error) {
	var n int
	var err error
	if lt.SessionID != "" {
		n, err = b.endWhere(ctx, "sid", lt.SessionID, func(s *session) bool {
			return s.rec.SID == lt.SessionID && (lt.Subject == "" || lt.Subject == s.rec.Subject)
		}, endBackchannel)
	} else {
		n, err = b.endWhere(ctx, "sub", lt.Subject, nil, endBackchannel)
	}
	b.tel.sessionsEnded(ctx, endBackchannel, n)
	return n, err
}

// logoutTokenParam reads the form field logout_token of a back-channel
// logout request, from a body of at most 64 KiB.
func logoutTokenParam(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return "", err
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" {
		return "", errors.New("no logout_token")
	}
	return raw, nil
}

func (b *BFF) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	invalid := func(cause error) {
		b.log.WarnContext(r.Context(), "bff: back-channel logout refused", "reason", cause)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
	}
	raw, err := logoutTokenParam(w, r)
	if err != nil {
		invalid(err)
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
	n, err := b.endLogoutTokenSessions(ctx, lt)
	if err != nil {
		// Not every session could be ended (the store failed): forget the
		// jti, so that the provider's retry of this token is not refused
		// as a replay.
		if ferr := b.store.forget(context.WithoutCancel(ctx), replayJTI, jti); ferr != nil {
			b.log.WarnContext(ctx, "bff: back-channel logout failed and its jti could not be forgotten; the provider's retry will be refused", "err", ferr)
		}
		b.fail(w, r, err)
		return
	}
	b.log.InfoContext(ctx, "bff: back-channel logout", b.subject(lt.Subject), "sessions_ended", n)
	w.WriteHeader(http.StatusOK)
}
