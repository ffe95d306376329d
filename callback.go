package bff

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gobff/bff/internal/record"
	"golang.org/x/oauth2"
)

// handleCallback completes a sign-in. Every check runs before anything is
// stored; any failure answers an error (or, for a silent sign-in or a
// step-up the provider could not do, goes back to returnTo with error=)
// and changes no session.
func (b *BFF) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tx, txErr := b.callbackTx(w, r, q.Get("state"))
	if q.Get("error") != "" {
		b.providerError(w, r, tx, txErr, q)
		return
	}
	if txErr != nil {
		b.failTo(w, r, txErr, "/") // no sign-in of this browser: no returnTo
		return
	}
	s, id, returnTo, err := b.completeLogin(r, &tx, q)
	var back *backToApp
	if errors.As(err, &back) {
		noteOutcome(w, back.Code)
		b.log.InfoContext(r.Context(), "bff: sign-in refused", "code", back.Code, "err", back.Err)
		http.Redirect(w, r, back.location(), http.StatusSeeOther)
		return
	}
	if err != nil {
		b.failTo(w, r, err, tx.ReturnTo)
		return
	}
	b.sessionCookie(w, id, 0)
	b.log.LogAttrs(r.Context(), slog.LevelInfo, "bff: signed in", b.subject(s.rec.Subject))
	b.land(w, r, returnTo)
}

// callbackTx finds and checks the sign-in of the callback's state. Its
// cookie goes away whatever the outcome (single use in this browser), as
// does an unreadable one; another sign-in's cookie in the slot stays.
func (b *BFF) callbackTx(w http.ResponseWriter, r *http.Request, state string) (txn, error) {
	fail := func(desc string, cause error) (txn, error) {
		return txn{}, errLogin(http.StatusBadRequest, desc, cause)
	}
	expired := func(desc string, cause error) (txn, error) {
		return txn{}, loginError(http.StatusBadRequest, codeLoginExpired, desc, cause)
	}
	slot, ok := txSlot(state)
	if !ok {
		return fail("The sign-in response has no valid state.", errors.New("missing or malformed state"))
	}
	name := b.txName(slot)
	tx, err := b.openTx(r.Header, name)
	mine := err == nil && subtle.ConstantTimeCompare([]byte(tx.State), []byte(state)) == 1
	if mine || err != nil && !errors.Is(err, errNoTxCookie) {
		b.txCookie(w, name, "", -1)
	}
	now := b.cfg.Now()
	switch {
	case errors.Is(err, errNoTxCookie):
		return expired("No sign-in is in progress in this browser for this response; start again.", err)
	case err != nil:
		return fail("The sign-in cookie is invalid; start again.", err)
	case !mine:
		return fail("No sign-in is in progress in this browser for this response; start again.",
			errors.New("state mismatch: the cookie slot holds another sign-in"))
	case now.Sub(time.UnixMilli(tx.Created)) > b.cfg.LoginTimeout || tx.Created > now.Add(time.Minute).UnixMilli():
		return expired("The sign-in took too long; start again.", errors.New("transaction expired"))
	case tx.Issuer != b.cfg.Issuer:
		return fail("The sign-in was started for another identity provider.", errors.New("transaction issuer mismatch"))
	}
	return tx, nil
}

// completeLogin runs every check of a callback whose sign-in (tx) checked
// out, then replaces the browser's session (if any) with a new one. It
// returns the new session, its ID, and where the browser goes next.
func (b *BFF) completeLogin(r *http.Request, tx *txn, q url.Values) (*session, string, string, error) {
	prov := b.provider()
	if prov == nil {
		return nil, "", "", b.notReady()
	}
	if err := b.checkIssParam(prov, q); err != nil {
		return nil, "", "", err
	}
	code := q.Get("code")
	if code == "" {
		return nil, "", "", errLogin(http.StatusBadRequest, "The sign-in response has no code.", errors.New("missing code"))
	}
	// The replay marker is written before the code goes to the provider:
	// a replayed response never reaches the token endpoint.
	ctx := r.Context()
	first, err := b.store.firstUse(ctx, replayState, tx.State, b.cfg.LoginTimeout)
	if err != nil {
		return nil, "", "", err
	}
	if !first {
		return nil, "", "", errLogin(http.StatusBadRequest, "This sign-in response was already used.", errors.New("state replayed"))
	}
	callCtx, cancel := context.WithTimeout(ctx, b.cfg.RefreshTimeout)
	defer cancel()
	tok, idt, err := b.redeem(callCtx, prov, code, tx)
	if err != nil {
		return nil, "", "", err
	}
	returnTo, err := b.checkAuthLevel(ctx, tx, idt)
	if err != nil {
		b.discard(ctx, prov, tok)
		return nil, "", "", err
	}
	claims, err := b.userClaims(callCtx, prov, tok.AccessToken, idt)
	if err != nil {
		return nil, "", "", err
	}
	s, id, err := b.startSession(r, tx, tok, idt, claims)
	if err != nil {
		return nil, "", "", err
	}
	return s, id, returnTo, nil
}

// checkIssParam checks the RFC 9207 iss parameter, which identifies the
// provider that answered (mix-up).
func (b *BFF) checkIssParam(prov *provider, q url.Values) error {
	if iss, present := q["iss"]; present {
		if len(iss) != 1 || !b.issuerOK(prov, iss[0]) {
			return errLogin(http.StatusBadRequest, "The sign-in response came from another identity provider.", errors.New("iss parameter mismatch (mix-up)"))
		}
	} else if prov.issParamRequired {
		return errLogin(http.StatusBadRequest, "The sign-in response lacks the issuer.", errors.New("iss parameter missing though the provider advertises it"))
	}
	return nil
}

// redeem exchanges the code (with the PKCE verifier) and verifies the ID
// token, its nonce included.
func (b *BFF) redeem(ctx context.Context, prov *provider, code string, tx *txn) (*oauth2.Token, *oidc.IDToken, error) {
	fail := func(desc string, cause error) (*oauth2.Token, *oidc.IDToken, error) {
		return nil, nil, errLogin(http.StatusBadRequest, desc, cause)
	}
	tok, err := prov.oauth.Exchange(b.tokenContext(ctx, prov), code, oauth2.VerifierOption(tx.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return fail("The identity provider refused the sign-in code.", scrub(err))
		}
		return nil, nil, errUnavailable("The identity provider", scrub(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return fail("The identity provider returned no ID token.", errors.New("token response without id_token"))
	}
	idt, err := b.verifyIDToken(b.clientContext(ctx), prov, rawID, tok.AccessToken)
	if errors.Is(err, errKeysUnavailable) {
		return nil, nil, errUnavailable("The identity provider", err)
	}
	if err != nil {
		return fail("The ID token failed verification.", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(tx.Nonce)) != 1 {
		return fail("The ID token failed verification.", errors.New("nonce mismatch"))
	}
	return tok, idt, nil
}

// userClaims are the ID token's claims about the user merged with the
// userinfo response, as OnLogin leaves them; sub, iss, sid and the
// authentication's acr, amr and auth_time are the ID token's.
func (b *BFF) userClaims(ctx context.Context, prov *provider, accessToken string, idt *oidc.IDToken) (map[string]any, error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, errLogin(http.StatusBadRequest, "The ID token failed verification.", err)
	}
	if prov.userinfoURL != "" {
		ui, err := b.userinfo(ctx, prov, accessToken)
		if err != nil {
			return nil, errUnavailable("The identity provider", err)
		}
		if sub, _ := ui["sub"].(string); sub != idt.Subject {
			return nil, errLogin(http.StatusBadRequest, "The user profile does not belong to the signed-in user.", errors.New("userinfo sub differs from the ID token's"))
		}
		for k, v := range ui {
			if _, protocol := protocolClaims[k]; !protocol {
				claims[k] = v
			}
		}
	}
	kept := map[string]any{}
	for k := range protocolClaims {
		if v, ok := claims[k]; ok && keptClaims[k] {
			kept[k] = v
		} else {
			delete(claims, k)
		}
	}
	if err := b.runOnLogin(ctx, claims); err != nil {
		return nil, loginError(http.StatusForbidden, codeLoginRefused, "Sign-in refused.", err)
	}
	maps.Copy(claims, kept)
	claims["sub"] = idt.Subject
	return claims, nil
}

// startSession creates the browser's new session, with a new ID, and then
// ends whatever session the browser had (session fixation; a step-up of
// the same user replaces its session the same way): the one whose cookie
// came with the callback, else the one it had when the sign-in started
// (tx). The new session is stored before the old one ends, so a failure
// leaves the browser's session as it was.
func (b *BFF) startSession(r *http.Request, tx *txn, tok *oauth2.Token, idt *oidc.IDToken, claims map[string]any) (*session, string, error) {
	fail := func(desc string, cause error) (*session, string, error) {
		return nil, "", errLogin(http.StatusBadRequest, desc, cause)
	}
	sid, _ := claims["sid"].(string)
	name, email := stringClaim(claims, "name"), stringClaim(claims, "email")
	claimsJSON, err := json.Marshal(compactClaims(claims, idt.Subject, sid, name, email))
	if err != nil {
		return fail("The user's claims cannot be stored.", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	now := b.cfg.Now()
	n := now.UnixNano()
	rec := record.Session{
		Rev: 1, Created: n, LastSeen: n, Expires: min(now.Add(b.cfg.MaxLifetime).UnixNano(), refreshDeadline(tok, now)),
		Subject: idt.Subject, SID: sid, Claims: claimsJSON, Name: name, Email: email,
		AccessToken: tok.AccessToken, TokenType: tok.Type(), AccessIssued: n,
		RefreshToken: tok.RefreshToken, IDToken: rawID, IDTokenExpiry: idt.Expiry.UnixNano(),
	}
	rec.AccessExpiry = accessExpiry(tok, now)
	if err := rec.Check(); err != nil {
		return fail("The user's profile is too large to keep in a session.", err)
	}
	id := rand.Text()
	s := newSession(recordName(id), rec)
	ctx := r.Context()
	replaced := tx.Replaces
	if old, ok := cookieValue(r.Header, b.cfg.CookieName); ok && validID(old) {
		replaced = recordName(old)
	}
	if err := b.store.create(ctx, s, replaced); err != nil {
		return nil, "", err
	}
	if replaced != "" {
		last, err := b.store.end(ctx, replaced, endReplaced)
		if err != nil {
			b.log.WarnContext(ctx, "bff: the previous session of this browser could not be ended", "err", err)
		}
		b.tel.sessionEnded(ctx, endReplaced, last)
	}
	return s, id, nil
}

func stringClaim(claims map[string]any, name string) string {
	v, _ := claims[name].(string)
	return v
}

func (b *BFF) runOnLogin(ctx context.Context, claims map[string]any) (err error) {
	if b.cfg.OnLogin == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("OnLogin panicked: %v", p)
		}
	}()
	if err := b.cfg.OnLogin(ctx, claims); err != nil {
		return fmt.Errorf("OnLogin: %w", err)
	}
	return nil
}

// userinfo fetches the user's profile (OIDC Core §5.3).
func (b *BFF) userinfo(ctx context.Context, prov *provider, accessToken string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, prov.userinfoURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("userinfo: status %d", resp.StatusCode)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("userinfo: not a JSON object (signed userinfo responses are not supported)")
	}
	return out, nil
}

// protocolClaims are ID-token claims about the token and the
// authentication, not the user: userinfo cannot set them, and of them the
// session keeps only keptClaims, as the ID token has them.
var protocolClaims = map[string]struct{}{
	"sub": {}, "iss": {}, "aud": {}, "exp": {}, "iat": {}, "nbf": {}, "nonce": {}, "at_hash": {}, "c_hash": {},
	"azp": {}, "jti": {}, "sid": {}, "auth_time": {}, "acr": {}, "amr": {},
}

// keptClaims are the protocol claims kept in the session's claims (and
// restored after OnLogin): who (sub, iss), the provider's session (sid),
// and how and when the user authenticated (acr, amr, auth_time), which
// RequireAuthLevel checks.
var keptClaims = map[string]bool{"sub": true, "iss": true, "sid": true, "auth_time": true, "acr": true, "amr": true}
