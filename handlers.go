package bff

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gobff/bff/internal/record"
	"github.com/gobff/bff/internal/redirect"
	"github.com/gobff/bff/internal/seal"
)

// txn is one sign-in attempt, sealed into a cookie, so that /login keeps
// no server-side state. (The callback writes one replay marker once the
// cookie and its state check out.)
type txn struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
	Issuer   string `json:"i"`
	Created  int64  `json:"c"` // Unix milliseconds

	// What the callback checks of the authentication (stepup.go) and how
	// it answers a provider's error (silent.go).
	Prompt       string   `json:"p,omitempty"`
	ACR          []string `json:"a,omitempty"` // acr_values sent
	ACREssential bool     `json:"e,omitempty"` // and asked for as an essential claim
	MaxAge       *int64   `json:"m,omitempty"` // max_age sent, in seconds

	// Replaces is the store key of the session the browser had at /login,
	// where its SameSite=Strict cookie comes along; the callback, reached
	// from the provider's site, does not get it.
	Replaces string `json:"o,omitempty"`
}

// maxTxCookies bounds the sign-in cookies a browser carries, by
// construction: a sign-in's cookie is one of maxTxCookies slots, named
// after the slot, and the slot is the last character of its state. Parallel
// sign-ins (tabs) take free slots; when none is free, a new sign-in takes
// the slot of the oldest.
const maxTxCookies = 4

var errNoTxCookie = errors.New("no transaction cookie for this state (replayed, expired, replaced, or started in another browser)")

// txMaxAge is LoginTimeout in whole seconds, rounded up (the sealed
// creation time is what enforces the timeout).
func (b *BFF) txMaxAge() int { return int((b.cfg.LoginTimeout + time.Second - 1) / time.Second) }

func (b *BFF) txPrefix() string { return b.cfg.CookieName + "-tx-" }

func (b *BFF) txName(slot int) string { return b.txPrefix() + strconv.Itoa(slot) }

// txSlot returns the cookie slot of a state: a session-ID-like random part
// and a slot digit.
func txSlot(state string) (int, bool) {
	if len(state) != sessionIDLen+1 || !validID(state[:sessionIDLen]) {
		return 0, false
	}
	c := state[sessionIDLen]
	if c < '0' || c >= '0'+maxTxCookies {
		return 0, false
	}
	return int(c - '0'), true
}

// pickTxSlot chooses the slot of a new sign-in: a free one, trying them
// from a rotating start so that sign-ins racing in one browser take
// different slots, else the slot of the oldest (or unreadable) sign-in.
func (b *BFF) pickTxSlot(h http.Header) int {
	start := int(b.txSeq.Add(1) % maxTxCookies)
	oldest, oldestAt := start, int64(math.MaxInt64)
	for i := range maxTxCookies {
		slot := (start + i) % maxTxCookies
		tx, err := b.openTx(h, b.txName(slot))
		if errors.Is(err, errNoTxCookie) {
			return slot
		}
		if err != nil {
			tx.Created = math.MinInt64
		}
		if tx.Created < oldestAt {
			oldest, oldestAt = slot, tx.Created
		}
	}
	return oldest
}

// openTx opens the transaction cookie called name.
func (b *BFF) openTx(h http.Header, name string) (txn, error) {
	var tx txn
	raw, ok := cookieValue(h, name)
	if !ok {
		return tx, errNoTxCookie
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return tx, err
	}
	plain, err := b.sealer.Open(nil, seal.PurposeTransaction, sealed, []byte(name))
	if err != nil {
		return tx, err
	}
	return tx, json.Unmarshal(plain, &tx)
}

// sealTx seals tx for the cookie called name. JSON without HTML escaping:
// a returnTo of "<" would otherwise grow six-fold.
func (b *BFF) sealTx(tx txn, name string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(tx)
	return base64.RawURLEncoding.EncodeToString(b.sealer.Seal(nil, seal.PurposeTransaction, buf.Bytes(), []byte(name)))
}

func (b *BFF) txCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: b.cfg.cookieSec, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func badRequest(description string, cause error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: description,
		Err: fmt.Errorf("%w: %w", ErrBadRequest, cause)}
}

// handleLogin starts the authorization-code flow with PKCE S256, state and
// nonce, and the sign-in parameters the browser may give (loginParams).
func (b *BFF) handleLogin(w http.ResponseWriter, r *http.Request) {
	if b.redirectToBaseHost(w, r) {
		return
	}
	prov := b.provider()
	// A failure here goes to "/" (or ErrorPath) for a navigation (failTo):
	// returnTo may be a page that would start this sign-in again.
	if prov == nil {
		b.failTo(w, r, b.notReady(), "/")
		return
	}
	query := r.URL.Query()
	returnTo, err := loginReturnTo(query.Get("returnTo"))
	if err != nil {
		b.failTo(w, r, err, "/")
		return
	}
	params, err := b.loginParams(query)
	if err != nil {
		b.failTo(w, r, badRequest("Invalid sign-in parameter: "+err.Error()+".", err), "/")
		return
	}
	slot := b.pickTxSlot(r.Header)
	tx := txn{State: rand.Text() + strconv.Itoa(slot), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(),
		ReturnTo: returnTo, Issuer: b.cfg.Issuer, Created: b.cfg.Now().UnixMilli()}
	if old, ok := cookieValue(r.Header, b.cfg.CookieName); ok && validID(old) {
		tx.Replaces = recordName(old)
	}
	dest, err := b.authorizationRedirect(r.Context(), prov, &tx, params)
	if err != nil {
		b.failTo(w, r, err, "/")
		return
	}
	name := b.txName(slot)
	b.txCookie(w, name, b.sealTx(tx, name), b.txMaxAge())
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// loginReturnTo checks /login's returnTo ("/" when absent).
func loginReturnTo(q string) (string, error) {
	if q == "" {
		return "/", nil
	}
	rt, err := redirect.Path(q)
	if errors.Is(err, redirect.ErrTooLong) {
		return "", badRequest(fmt.Sprintf("returnTo is longer than %d bytes.", redirect.MaxLen), err)
	}
	if err != nil {
		return "", badRequest("returnTo must be a same-origin path such as /app.", err)
	}
	return rt, nil
}

// oauthErrors are the error codes of RFC 6749 §4.1.2.1 and OIDC Core
// §3.1.2.6 (and its errata's unmet_authentication_requirements); only
// these are repeated to the client.
var oauthErrors = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true, "unsupported_response_type": true,
	"invalid_scope": true, "server_error": true, "temporarily_unavailable": true, "interaction_required": true,
	"login_required": true, "account_selection_required": true, "consent_required": true,
	"invalid_request_uri": true, "invalid_request_object": true, "request_not_supported": true,
	"request_uri_not_supported": true, "registration_not_supported": true, "unmet_authentication_requirements": true,
}

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
		if len(iss) != 1 || iss[0] != b.cfg.Issuer {
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

// handleSession answers the browser app's "who am I": the user's claims,
// when the session ends, and where to sign out. Never a token.
func (b *BFF) handleSession(w http.ResponseWriter, r *http.Request) {
	s, err := b.liveSession(w, r)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	now := b.cfg.Now()
	ends := time.Unix(0, b.store.deadline(&s.rec))
	claims, _ := json.Marshal(s.user.claims.get()) // with the ones the record keeps as fields
	writeJSON(w, http.StatusOK, sessionInfo{
		User:      userJSON{Subject: s.user.Subject, Name: s.user.Name, Email: s.user.Email, Claims: claims},
		ExpiresAt: ends.UTC().Format(time.RFC3339),
		ExpiresIn: int64(ends.Sub(now) / time.Second),
		LogoutURL: b.cfg.Prefix + "/logout",
	})
}

type userJSON struct {
	Subject string          `json:"sub"`
	Name    string          `json:"name,omitempty"`
	Email   string          `json:"email,omitempty"`
	Claims  json.RawMessage `json:"claims"`
}

type sessionInfo struct {
	User      userJSON `json:"user"`
	ExpiresAt string   `json:"expiresAt"`
	ExpiresIn int64    `json:"expiresIn"` // seconds
	LogoutURL string   `json:"logoutUrl"` // POST here to sign out
}
