package bff

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gobff/bff/internal/redirect"
	"github.com/gobff/bff/internal/seal"
	"golang.org/x/oauth2"
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
