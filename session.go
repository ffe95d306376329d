package bff

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/gobff/bff/internal/record"
	"github.com/gobff/bff/internal/sessionctx"
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
	rec  *record.Session // for the claims compactClaims left out
	once sync.Once
	m    map[string]any
}

// compactClaims leaves out of the claims kept at rest the ones the record
// holds as fields anyway (sub, sid, name, email, when they are those
// strings), so that a session record stays small; claimSet puts them back.
func compactClaims(claims map[string]any, sub, sid, name, email string) map[string]any {
	out := maps.Clone(claims)
	for k, v := range map[string]string{"sub": sub, "sid": sid, "name": name, "email": email} {
		if s, ok := out[k].(string); ok && s == v && v != "" {
			delete(out, k)
		}
	}
	return out
}

func (c *claimSet) get() map[string]any {
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		// The record is authenticated and its claims were marshalled by
		// bff, so they parse; should they not, the user has no claims.
		json.Unmarshal(c.raw, &c.m)
		if c.m == nil {
			c.m = map[string]any{}
		}
		for k, v := range map[string]string{"sub": c.rec.Subject, "sid": c.rec.SID, "name": c.rec.Name, "email": c.rec.Email} {
			if _, ok := c.m[k]; !ok && v != "" {
				c.m[k] = v
			}
		}
	})
	return c.m
}

// Token is the user's current access token, for calling downstream APIs.
// It formats and logs as "[redacted]"; use the AccessToken field itself.
type Token struct {
	AccessToken string    // send it only to the API it was issued for
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
	rec   record.Session // first: its times are what every request reads
	key   string         // store key (a hash of the session ID)
	rev   []byte         // the revision it was read or written at (sessionStore.swap)
	user  User
	token Token
}

type ctxKey struct{ name string }

func (k *ctxKey) String() string { return "bff context value " + k.name }

var sessionKey = &ctxKey{"session"}

// The test kit (bfftest.WithUser) builds a request's session here, from
// what a test gives, exactly as a sign-in would store it.
func init() {
	sessionctx.With = func(ctx context.Context, v sessionctx.Values) (context.Context, error) {
		claims := maps.Clone(v.Claims)
		if claims == nil {
			claims = map[string]any{}
		}
		for k, c := range map[string]string{"sub": v.Subject, "name": v.Name, "email": v.Email} {
			if c != "" {
				claims[k] = c
			}
		}
		raw, err := json.Marshal(compactClaims(claims, v.Subject, "", v.Name, v.Email))
		if err != nil {
			return ctx, err
		}
		rec := record.Session{Subject: v.Subject, Name: v.Name, Email: v.Email, Claims: raw,
			AccessToken: v.AccessToken, TokenType: v.TokenType}
		if !v.Expiry.IsZero() {
			rec.AccessExpiry = v.Expiry.UnixNano()
		}
		return context.WithValue(ctx, sessionKey, newSession("", rec)), nil
	}
}

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
	s.user.claims.rec = &s.rec
	s.token = Token{AccessToken: rec.AccessToken, TokenType: rec.TokenType}
	if rec.AccessExpiry != 0 {
		s.token.Expiry = time.Unix(0, rec.AccessExpiry)
	}
	return s
}

// ACR returns the authentication context class reference the user signed
// in with (the ID token's acr claim), or "".
func (u User) ACR() string {
	v, _ := u.claims.get()["acr"].(string)
	return v
}

// AMR returns the authentication methods the user signed in with (the ID
// token's amr claim, such as ["pwd", "otp"]), or nil.
func (u User) AMR() []string {
	vs, _ := u.claims.get()["amr"].([]any)
	var out []string
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// AuthTime returns when the user last authenticated at the provider (the
// ID token's auth_time claim), or the zero time if the provider did not
// say.
func (u User) AuthTime() time.Time {
	if v, ok := u.claims.get()["auth_time"].(float64); ok && v > 0 {
		return time.Unix(int64(v), 0)
	}
	return time.Time{}
}
