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
	"math"
	"net/http"
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

var errNotReady = &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", RetryAfter: 5,
	Description: "The identity provider is not reachable yet; try again shortly.",
	Err:         fmt.Errorf("%w: provider discovery has not succeeded yet", ErrUnavailable)}

func badRequest(description string, cause error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: description,
		Err: fmt.Errorf("%w: %w", ErrBadRequest, cause)}
}

// handleLogin starts the authorization-code flow with PKCE S256, state and
// nonce.
func (b *BFF) handleLogin(w http.ResponseWriter, r *http.Request) {
	prov := b.provider()
	if prov == nil {
		b.failTo(w, r, errNotReady, "/")
		return
	}
	returnTo := "/"
	if q := r.URL.Query().Get("returnTo"); q != "" {
		rt, err := redirect.Path(q)
		if errors.Is(err, redirect.ErrTooLong) {
			b.failTo(w, r, badRequest(fmt.Sprintf("returnTo is longer than %d bytes.", redirect.MaxLen), err), "/")
			return
		}
		if err != nil {
			b.failTo(w, r, badRequest("returnTo must be a same-origin path such as /app.", err), "/")
			return
		}
		returnTo = rt
	}
	slot := b.pickTxSlot(r.Header)
	tx := txn{State: rand.Text() + strconv.Itoa(slot), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(),
		ReturnTo: returnTo, Issuer: b.cfg.Issuer, Created: b.cfg.Now().UnixMilli()}
	name := b.txName(slot)
	b.txCookie(w, name, b.sealTx(tx, name), b.txMaxAge())
	http.Redirect(w, r, prov.oauth.AuthCodeURL(tx.State, oidc.Nonce(tx.Nonce), oauth2.S256ChallengeOption(tx.Verifier)),
		http.StatusSeeOther)
}

// oauthErrors are the error codes of RFC 6749 §4.1.2.1 and OIDC Core
// §3.1.2.6; only these are repeated to the client.
var oauthErrors = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true, "unsupported_response_type": true,
	"invalid_scope": true, "server_error": true, "temporarily_unavailable": true, "interaction_required": true,
	"login_required": true, "account_selection_required": true, "consent_required": true,
	"invalid_request_uri": true, "invalid_request_object": true, "request_not_supported": true,
	"request_uri_not_supported": true, "registration_not_supported": true,
}

// handleCallback completes a sign-in. Every check runs before anything is
// stored; any failure answers an error and changes no session.
func (b *BFF) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tx, txErr := b.callbackTx(w, r, q.Get("state"))
	dest := tx.ReturnTo // where a failure goes (failTo)
	if txErr != nil {
		dest = "/"
	}
	if e := q.Get("error"); e != "" {
		code, shown := codeLoginFailed, "unknown_error"
		if oauthErrors[e] {
			code, shown = e, e
		}
		b.failTo(w, r, loginError(http.StatusBadRequest, code, "The identity provider did not sign you in ("+shown+").",
			fmt.Errorf("provider returned error %q", shown)), dest)
		return
	}
	if txErr != nil {
		b.failTo(w, r, txErr, dest)
		return
	}
	s, id, returnTo, err := b.completeLogin(r, tx, q)
	if err != nil {
		b.failTo(w, r, err, dest)
		return
	}
	b.sessionCookie(w, id, 0)
	b.log.Info("bff: signed in", "sub", s.rec.Subject)
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

func (b *BFF) completeLogin(r *http.Request, tx txn, q map[string][]string) (*session, string, string, error) {
	fail := func(desc string, cause error) (*session, string, string, error) {
		return nil, "", "", errLogin(http.StatusBadRequest, desc, cause)
	}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	now := b.cfg.Now()
	prov := b.provider()
	if prov == nil {
		return nil, "", "", errNotReady
	}
	// RFC 9207: the iss parameter identifies the provider that answered.
	if iss, present := q["iss"]; present {
		if len(iss) != 1 || iss[0] != b.cfg.Issuer {
			return fail("The sign-in response came from another identity provider.", errors.New("iss parameter mismatch (mix-up)"))
		}
	} else if prov.issParamRequired {
		return fail("The sign-in response lacks the issuer.", errors.New("iss parameter missing though the provider advertises it"))
	}
	code := get("code")
	if code == "" {
		return fail("The sign-in response has no code.", errors.New("missing code"))
	}
	ctx := r.Context()
	first, err := b.store.firstUse(ctx, replayState, tx.State, b.cfg.LoginTimeout)
	if err != nil {
		return nil, "", "", err
	}
	if !first {
		return fail("This sign-in response was already used.", errors.New("state replayed"))
	}

	callCtx, cancel := context.WithTimeout(b.clientContext(ctx), b.cfg.RefreshTimeout)
	defer cancel()
	tok, err := prov.oauth.Exchange(callCtx, code, oauth2.VerifierOption(tx.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return fail("The identity provider refused the sign-in code.", scrub(err))
		}
		return nil, "", "", errUnavailable("The identity provider", scrub(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return fail("The identity provider returned no ID token.", errors.New("token response without id_token"))
	}
	idt, err := b.verifyIDToken(callCtx, prov, rawID, tok.AccessToken)
	if errors.Is(err, errKeysUnavailable) {
		return nil, "", "", errUnavailable("The identity provider", err)
	}
	if err != nil {
		return fail("The ID token failed verification.", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(tx.Nonce)) != 1 {
		return fail("The ID token failed verification.", errors.New("nonce mismatch"))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return fail("The ID token failed verification.", err)
	}
	if prov.userinfoURL != "" {
		ui, err := b.userinfo(callCtx, prov, tok.AccessToken)
		if err != nil {
			return nil, "", "", errUnavailable("The identity provider", err)
		}
		if sub, _ := ui["sub"].(string); sub != idt.Subject {
			return fail("The user profile does not belong to the signed-in user.", errors.New("userinfo sub differs from the ID token's"))
		}
		for k, v := range ui {
			if _, protocol := protocolClaims[k]; !protocol {
				claims[k] = v
			}
		}
	}
	sid, _ := claims["sid"].(string)
	for k := range protocolClaims {
		if k != "sub" && k != "iss" && k != "sid" && k != "auth_time" {
			delete(claims, k)
		}
	}
	if err := b.runOnLogin(ctx, claims); err != nil {
		return nil, "", "", loginError(http.StatusForbidden, codeLoginRefused, "Sign-in refused.", err)
	}
	claims["sub"] = idt.Subject
	claimsJSON, err := json.Marshal(claims)
	if err != nil {
		return fail("The user's claims cannot be stored.", err)
	}

	// Session fixation: whatever session this browser had ends; the new
	// one gets a new ID.
	if old, ok := cookieValue(r.Header, b.cfg.CookieName); ok && validID(old) {
		if _, err := b.store.end(ctx, recordName(old), reasonReplaced); err != nil {
			b.log.Warn("bff: the previous session of this browser could not be ended", "err", err)
		}
	}
	n := now.UnixNano()
	rec := record.Session{
		Rev: 1, Created: n, LastSeen: n, Expires: min(now.Add(b.cfg.MaxLifetime).UnixNano(), refreshDeadline(tok, now)),
		Subject: idt.Subject, SID: sid, Claims: claimsJSON, Name: stringClaim(claims, "name"), Email: stringClaim(claims, "email"),
		AccessToken: tok.AccessToken, TokenType: tok.Type(), AccessIssued: n,
		RefreshToken: tok.RefreshToken, IDToken: rawID, IDTokenExpiry: idt.Expiry.UnixNano(),
	}
	rec.AccessExpiry = accessExpiry(tok, now)
	if err := rec.Check(); err != nil {
		return fail("The user's profile is too large to keep in a session.", err)
	}
	id := rand.Text()
	s := newSession(recordName(id), rec)
	if err := b.store.create(ctx, s); err != nil {
		return nil, "", "", err
	}
	return s, id, tx.ReturnTo, nil
}

func stringClaim(claims map[string]any, name string) string {
	v, _ := claims[name].(string)
	return v
}

// protocolClaims are ID-token claims about the token, not the user; they
// are not kept with the user's claims (except sub, iss, sid, auth_time).
var protocolClaims = map[string]struct{}{
	"sub": {}, "iss": {}, "aud": {}, "exp": {}, "iat": {}, "nbf": {}, "nonce": {}, "at_hash": {}, "c_hash": {},
	"azp": {}, "jti": {}, "sid": {}, "auth_time": {}, "acr": {}, "amr": {},
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
	writeJSON(w, http.StatusOK, sessionInfo{
		User:      userJSON{Subject: s.user.Subject, Name: s.user.Name, Email: s.user.Email, Claims: s.rec.Claims},
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
