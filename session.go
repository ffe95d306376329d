package bff

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/gobff/bff/internal/record"
	"github.com/gobff/bff/internal/seal"
)

// User is the signed-in user: the ID token's claims merged with the
// userinfo response (and changed by Options.OnLogin, if set).
type User struct {
	Subject string // the "sub" claim
	Name    string // the "name" claim, if any
	Email   string // the "email" claim, if any

	claims *claimSet // shared by every request of the session; see Claims
}

// Claim returns one claim.
func (u User) Claim(name string) (any, bool) {
	v, ok := u.claims.get()[name]
	return v, ok
}

// Claims returns a copy of all claims.
func (u User) Claims() map[string]any {
	return maps.Clone(u.claims.get())
}

// claimSet parses a session's claims on first use, so that requests that
// only need Subject, Name or Email never parse JSON.
type claimSet struct {
	raw  []byte
	once sync.Once
	m    map[string]any
}

func (c *claimSet) get() map[string]any {
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		// The record is authenticated and its claims were marshalled by
		// bff, so they parse; should they not, the user has no claims.
		json.Unmarshal(c.raw, &c.m)
	})
	return c.m
}

// Token is the user's current access token, for calling downstream APIs.
// It formats and logs as "[redacted]"; use the AccessToken field itself.
type Token struct {
	AccessToken string
	TokenType   string    // usually "Bearer"
	Expiry      time.Time // zero: the provider gave no expiry
}

// String redacts the token, so that fmt never prints it.
func (Token) String() string { return "[redacted]" }

// GoString redacts the token for %#v.
func (Token) GoString() string { return "bff.Token{[redacted]}" }

// LogValue redacts the token in slog output.
func (Token) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// session is one decoded session record. It is immutable once built and
// shared between requests through the cache; a change builds a new one.
type session struct {
	key   string // store key (a hash of the session ID)
	rec   record.Session
	user  User
	token Token
}

type ctxKey struct{ name string }

func (k *ctxKey) String() string { return "bff context value " + k.name }

var sessionKey = &ctxKey{"session"}

func fromContext(ctx context.Context) (*session, bool) {
	if ctx == nil {
		return nil, false
	}
	s, ok := ctx.Value(sessionKey).(*session)
	return s, ok && s != nil
}

// UserFrom returns the signed-in user that RequireSession put into ctx.
func UserFrom(ctx context.Context) (User, bool) {
	s, ok := fromContext(ctx)
	if !ok {
		return User{}, false
	}
	return s.user, true
}

// TokenFrom returns the access token that RequireSession put into ctx. It is
// valid for at least Options.RefreshSkew (or has no expiry).
func TokenFrom(ctx context.Context) (Token, bool) {
	s, ok := fromContext(ctx)
	if !ok {
		return Token{}, false
	}
	return s.token, true
}

// newSession builds the shared, decoded form of a record.
func newSession(key string, rec record.Session) *session {
	s := &session{key: key, rec: rec}
	s.user = User{Subject: rec.Subject, Name: rec.Name, Email: rec.Email, claims: &claimSet{raw: rec.Claims}}
	s.token = Token{AccessToken: rec.AccessToken, TokenType: rec.TokenType}
	if rec.AccessExpiry != 0 {
		s.token.Expiry = time.Unix(0, rec.AccessExpiry)
	}
	return s
}

// sessionIDLen is the length of crypto/rand.Text's output.
const sessionIDLen = 26

// validID reports whether s has the shape of a session ID, so that a
// malformed cookie costs no store lookup.
func validID(s string) bool {
	if len(s) != sessionIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// cookieValue finds a cookie without allocating (http.Request.Cookie parses
// and allocates every cookie).
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if k, v, ok := strings.Cut(part, "="); ok && k == name {
				return strings.Trim(v, `"`), true
			}
		}
	}
	return "", false
}

func storeKey(id string) string { return seal.IDName("s", id) }

// errNotFound: no such session (or it does not open).
var errNotFound = errors.New("session not found")

// load returns the session for id: from the cache when it may be trusted,
// otherwise from the store. errNotFound for no session; an *Error (503) when
// the store fails.
func (b *BFF) load(ctx context.Context, id string) (*session, error) {
	return b.loadAt(ctx, id, b.cfg.Now())
}

// loadAt is load with the request's clock reading (one per request: the
// clock is a measurable part of the hot path).
func (b *BFF) loadAt(ctx context.Context, id string, now time.Time) (*session, error) {
	if b.cache != nil {
		if s := b.cache.get(id, now); s != nil {
			return s, nil
		}
	}
	seq := b.cache.seq()
	key := storeKey(id)
	s, err := b.read(ctx, key)
	if err != nil {
		return nil, err
	}
	b.cache.put(id, s, seq, now)
	return s, nil
}

// read reads and opens one session record from the store, bypassing the
// cache.
func (b *BFF) read(ctx context.Context, key string) (*session, error) {
	raw, found, err := b.storeFind(ctx, key)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errNotFound
	}
	plain, err := b.sealer.Open(nil, seal.PurposeSession, raw, []byte(key))
	if err != nil {
		b.log.Warn("bff: session record does not open; treating as no session (was a secret key removed?)",
			"store_key", key)
		return nil, errNotFound
	}
	var rec record.Session
	if err := rec.Decode(plain); err != nil {
		b.log.Warn("bff: session record does not decode; treating as no session", "store_key", key)
		return nil, errNotFound
	}
	return newSession(key, rec), nil
}

// write seals and stores a session record. The caller holds the session's
// lock. Every instance's cache entry for it is invalidated.
func (b *BFF) write(ctx context.Context, s *session) error {
	plain := s.rec.Append(nil)
	sealed := b.sealer.Seal(nil, seal.PurposeSession, plain, []byte(s.key))
	exp := min(s.rec.Expires, s.rec.LastSeen+int64(b.cfg.IdleTimeout))
	if err := b.storeCommit(ctx, s.key, sealed, time.Unix(0, exp)); err != nil {
		return err
	}
	b.invalidate(ctx, s.key)
	return nil
}

// remove deletes a session record and invalidates every instance's cache.
func (b *BFF) remove(ctx context.Context, key string) error {
	if err := b.storeDelete(ctx, key); err != nil {
		return err
	}
	b.invalidate(ctx, key)
	return nil
}

func (b *BFF) invalidate(ctx context.Context, key string) {
	b.cache.drop(key)
	if b.bus != nil {
		// The record has changed: announce it even if the caller has gone
		// away, or other instances would serve their cached copy.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		var err error
		for try := 0; try < 3; try++ {
			if err = b.bus.Publish(ctx, key); err == nil || ctx.Err() != nil {
				break
			}
		}
		if err != nil {
			// Redis answered the write but not the announcement: other
			// instances may serve their copy until the cache's age bound
			// (sessionCacheMaxAge), unless their own subscription is
			// unhealthy too (then they read Redis).
			b.log.Error("bff: cache invalidation not published", "store_key", key, "err", err)
		}
	}
}

// The store calls below put a circuit breaker in front of the store: after
// a failure, requests answer 503 at once for storeBackoff instead of piling
// up on a dead connection.
const storeBackoff = 250 * time.Millisecond

func (b *BFF) storeErr(err error) error {
	b.storeDownUntil.Store(time.Now().Add(storeBackoff).UnixNano())
	return errUnavailable("The session store", err)
}

func (b *BFF) storeDown() error {
	if until := b.storeDownUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return errUnavailable("The session store", errors.New("recent store failure"))
	}
	return nil
}

func (b *BFF) storeFind(ctx context.Context, key string) ([]byte, bool, error) {
	if err := b.storeDown(); err != nil {
		return nil, false, err
	}
	var raw []byte
	var found bool
	var err error
	if cs, ok := b.store.(scs.CtxStore); ok {
		raw, found, err = cs.FindCtx(ctx, key)
	} else {
		raw, found, err = b.store.Find(key)
	}
	if err != nil {
		return nil, false, b.storeErr(err)
	}
	return raw, found, nil
}

func (b *BFF) storeCommit(ctx context.Context, key string, v []byte, exp time.Time) error {
	if err := b.storeDown(); err != nil {
		return err
	}
	var err error
	if cs, ok := b.store.(scs.CtxStore); ok {
		err = cs.CommitCtx(ctx, key, v, exp)
	} else {
		err = b.store.Commit(key, v, exp)
	}
	if err != nil {
		return b.storeErr(err)
	}
	return nil
}

func (b *BFF) storeDelete(ctx context.Context, key string) error {
	if err := b.storeDown(); err != nil {
		return err
	}
	if err := b.storeDeleteNow(ctx, key); err != nil {
		return b.storeErr(err)
	}
	return nil
}

// storeDeleteNow deletes past the circuit breaker: for undoing a write
// right after a failure.
func (b *BFF) storeDeleteNow(ctx context.Context, key string) error {
	if cs, ok := b.store.(scs.CtxStore); ok {
		return cs.DeleteCtx(ctx, key)
	}
	return b.store.Delete(key)
}

// sessionCookie sets (or, with maxAge < 0, clears) the session cookie.
func (b *BFF) sessionCookie(w http.ResponseWriter, id string, maxAge int) {
	if id == "" && maxAge < 0 {
		w.Header().Add("Set-Cookie", b.cfg.clearCookie) // built once (bad cookies may come in floods)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: b.cfg.CookieName, Value: id, Path: "/", MaxAge: maxAge,
		Secure: b.cfg.cookieSec, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// cache holds decoded sessions by session ID. With Redis it is trusted only
// while the invalidation bus is healthy, and no entry is older than
// maxAge. All methods are safe on a nil *cache (no caching).
type cache struct {
	mu      sync.RWMutex
	byID    map[string]cacheEntry
	byKey   map[string]string // store key -> session ID, for invalidation by key
	maxAge  time.Duration     // 0: no bound (memory store: this process sees every write)
	trusted func() bool       // nil: always
	seqFn   func() uint64     // invalidation counter of the bus, nil: local counter
	local   uint64            // guarded by mu
	limit   int
}

// sessionCacheMaxAge bounds how long a cached session is served without
// re-reading Redis, whatever the invalidation bus says: the last line of
// defence should an announcement be lost.
const sessionCacheMaxAge = 2 * time.Second

// cacheLimit bounds the cache (decoded sessions are a few KiB each).
const cacheLimit = 1 << 14

type cacheEntry struct {
	s  *session
	at int64
}

func newCache(maxAge time.Duration, trusted func() bool, seq func() uint64) *cache {
	return &cache{byID: map[string]cacheEntry{}, byKey: map[string]string{}, maxAge: maxAge,
		trusted: trusted, seqFn: seq, limit: cacheLimit}
}

func (c *cache) get(id string, now time.Time) *session {
	if c.trusted != nil && !c.trusted() {
		return nil
	}
	c.mu.RLock()
	e, ok := c.byID[id]
	c.mu.RUnlock()
	if !ok || (c.maxAge > 0 && now.UnixNano()-e.at > int64(c.maxAge)) {
		return nil
	}
	return e.s
}

// seq returns a counter that changes with every invalidation; put refuses
// an entry read before an invalidation that it may have missed.
func (c *cache) seq() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seqLocked()
}

// seqLocked counts local invalidations plus the bus's (remote ones and
// resets). Both only grow, so the sum changes whenever either does.
func (c *cache) seqLocked() uint64 {
	if c.seqFn != nil {
		return c.local + c.seqFn()
	}
	return c.local
}

func (c *cache) put(id string, s *session, seq uint64, now time.Time) {
	if c == nil || (c.trusted != nil && !c.trusted()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seqLocked() != seq {
		return
	}
	if len(c.byID) >= c.limit {
		// Full: drop the sessions that have certainly expired (the
		// absolute deadline passed), else an arbitrary entry.
		for k, e := range c.byID {
			if e.s.rec.Expires <= now.UnixNano() {
				delete(c.byID, k)
				delete(c.byKey, e.s.key)
			}
		}
		for k, e := range c.byID {
			if len(c.byID) < c.limit {
				break
			}
			delete(c.byID, k)
			delete(c.byKey, e.s.key)
		}
	}
	c.byID[id] = cacheEntry{s: s, at: now.UnixNano()}
	c.byKey[s.key] = id
}

// drop removes the entry of a store key (a local or remote write).
func (c *cache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.local++
	if id, ok := c.byKey[key]; ok {
		delete(c.byKey, key)
		delete(c.byID, id)
	}
	c.mu.Unlock()
}

// reset empties the cache (the bus lost messages).
func (c *cache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.local++
	clear(c.byID)
	clear(c.byKey)
	c.mu.Unlock()
}

// liveSession finds the request's session and ends it if it has expired.
// A missing, malformed or unknown cookie is cleared.
func (b *BFF) liveSession(w http.ResponseWriter, r *http.Request) (*session, error) {
	return b.liveSessionAt(w, r, b.cfg.Now())
}

// liveSessionAt is liveSession at the request's clock reading now.
func (b *BFF) liveSessionAt(w http.ResponseWriter, r *http.Request, now time.Time) (*session, error) {
	id, ok := cookieValue(r.Header, b.cfg.CookieName)
	if !ok {
		return nil, errNoCookie
	}
	if !validID(id) {
		b.sessionCookie(w, "", -1)
		return nil, errBadCookie
	}
	s, err := b.loadAt(r.Context(), id, now)
	if err == errNotFound {
		b.sessionCookie(w, "", -1)
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	if b.expired(s, now.UnixNano()) {
		b.end(r.Context(), s)
		b.sessionCookie(w, "", -1)
		return nil, errExpired
	}
	return s, nil
}
