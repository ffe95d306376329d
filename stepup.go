package bff

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// AuthLevelError is what RequireAuthLevel requires and the session did not
// have. It unwraps to ErrInsufficientAuth; a custom Options.ErrorHandler
// finds it with errors.As to tell the browser app what to ask for.
type AuthLevelError struct {
	ACRValues []string      // one of these acr values (none: any)
	MaxAge    time.Duration // at most this long since the user authenticated (0: any)
}

// Error says which level is required; it holds no token.
func (e *AuthLevelError) Error() string {
	return fmt.Sprintf("authentication level required: acr_values %q, max_age %v", e.ACRValues, e.MaxAge)
}

// Unwrap returns ErrInsufficientAuth.
func (e *AuthLevelError) Unwrap() error { return ErrInsufficientAuth }

// maxAgeSeconds is MaxAge in whole seconds, as max_age is sent.
func (e *AuthLevelError) maxAgeSeconds() int64 { return int64(e.MaxAge / time.Second) }

// insufficientAuthCode is the error code of RFC 9470.
const insufficientAuthCode = "insufficient_user_authentication"

// RequireAuthLevel guards a route that needs a stronger or more recent
// authentication than the session's (RFC 9470 step-up). Place it after
// RequireSession. When the session's acr is not one of acr (if any are
// given), or the user authenticated longer than maxAge ago (if maxAge is
// positive), it answers 401 with
//
//	WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="…", acr_values="a b", max_age=300
//
// and the same facts as JSON ({"error", "error_description", "acr_values",
// "max_age"}), so that the browser app sends the user to
// Prefix+"/login?acr_values=a+b&max_age=300&returnTo=…". That sign-in
// replaces the session (a new session ID, the new ID token's claims). If
// the provider ignores the request, the callback says so in returnTo's
// query (error=insufficient_user_authentication) and the route keeps
// answering 401: the app must not start another sign-in then.
//
// It panics if an acr value is empty or holds white space, a quote, a
// backslash or a non-ASCII character, if maxAge is negative, or if nothing
// is required.
func (b *BFF) RequireAuthLevel(acr []string, maxAge time.Duration) func(http.Handler) http.Handler {
	if slices.ContainsFunc(acr, func(v string) bool { return v == "" || badACR(v) }) || maxAge < 0 || (len(acr) == 0 && maxAge == 0) {
		panic("bff: RequireAuthLevel needs printable-ASCII acr values without quotes or backslashes, or a positive maxAge")
	}
	need := &AuthLevelError{ACRValues: slices.Clone(acr), MaxAge: maxAge}
	challenge := `Bearer error="` + insufficientAuthCode + `", error_description="` + stepUpDescription + `"`
	if len(acr) > 0 {
		challenge += `, acr_values="` + strings.Join(acr, " ") + `"`
	}
	if maxAge > 0 {
		challenge += ", max_age=" + strconv.FormatInt(need.maxAgeSeconds(), 10)
	}
	refusal := newError(need, http.StatusUnauthorized, insufficientAuthCode, stepUpDescription, nil)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok := UserFrom(r.Context())
			if !ok {
				b.fail(w, r, errUnauth(errors.New("RequireAuthLevel is not behind RequireSession")))
				return
			}
			if !b.authLevelMet(u, need) {
				w.Header().Set("WWW-Authenticate", challenge)
				b.fail(w, r, refusal)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

const stepUpDescription = "A stronger or more recent sign-in is required."

func (b *BFF) authLevelMet(u User, need *AuthLevelError) bool {
	if len(need.ACRValues) > 0 && !slices.Contains(need.ACRValues, u.ACR()) {
		return false
	}
	if need.MaxAge > 0 {
		at := u.AuthTime()
		return !at.IsZero() && b.cfg.Now().Sub(at) <= need.MaxAge
	}
	return true
}

// authTimeSkew is the clock difference between bff and the provider that
// the max_age check of the callback allows.
const authTimeSkew = time.Minute

// checkAuthLevel checks the authentication the ID token reports against
// what the sign-in asked for (OIDC Core §3.1.2.1, §3.1.3.7 items 11 and
// 13), and returns where the browser goes next. With max_age sent,
// auth_time must be present and no older than max_age before the sign-in
// started; with an essential acr, acr must be one of those asked for.
// Either failing refuses the sign-in: no session changes, and the browser
// goes back to returnTo with error=insufficient_user_authentication. A
// voluntary acr_values the provider did not honour signs the user in, and
// returnTo gets the same error, so that the app does not ask again.
func (b *BFF) checkAuthLevel(ctx context.Context, tx *txn, idt *oidc.IDToken) (string, error) {
	var c struct {
		ACR      string   `json:"acr"`
		AuthTime *float64 `json:"auth_time"`
	}
	if err := idt.Claims(&c); err != nil {
		c.AuthTime = nil // not a number: as good as absent
	}
	refuse := func(cause string) (string, error) {
		return "", &backToApp{ReturnTo: tx.ReturnTo, Code: insufficientAuthCode, Err: errors.New(cause)}
	}
	if tx.MaxAge != nil {
		oldest := time.UnixMilli(tx.Created).Add(-time.Duration(*tx.MaxAge)*time.Second - authTimeSkew)
		switch {
		case c.AuthTime == nil:
			return refuse("max_age was sent and the ID token has no auth_time")
		case time.Unix(int64(*c.AuthTime), 0).Before(oldest):
			return refuse("auth_time is older than max_age allows")
		}
	}
	if len(tx.ACR) > 0 && !slices.Contains(tx.ACR, c.ACR) {
		if tx.ACREssential {
			return refuse("the ID token's acr is not one of the essential acr values asked for")
		}
		b.log.InfoContext(ctx, "bff: the provider signed the user in at another level than asked for", "acr", c.ACR, "acr_values", tx.ACR)
		return withError(tx.ReturnTo, insufficientAuthCode), nil
	}
	return tx.ReturnTo, nil
}

// discard revokes the refresh token of a sign-in refused after its code
// was redeemed, so that no grant outlives it at the provider.
func (b *BFF) discard(ctx context.Context, prov *provider, tok *oauth2.Token) {
	if prov.revocationURL == "" || tok.RefreshToken == "" {
		return
	}
	if err := b.revoke(ctx, prov, tok.RefreshToken); err != nil {
		b.log.WarnContext(ctx, "bff: the refresh token of a refused sign-in could not be revoked", "err", err)
	}
}

// backToApp ends a sign-in back at the app, with an error code in
// returnTo's query instead of an error page: a silent sign-in that the
// provider could not do, or an authentication weaker than asked for. No
// session was created or changed.
type backToApp struct {
	ReturnTo string
	Code     string
	Err      error
}

func (e *backToApp) Error() string { return "sign-in ended with " + e.Code + ": " + e.Err.Error() }

func (e *backToApp) location() string { return withError(e.ReturnTo, e.Code) }

// withError adds error=code to the query of the same-origin path returnTo
// (replacing any error parameter it had), before its fragment.
func withError(returnTo, code string) string {
	rest, frag, hasFrag := strings.Cut(returnTo, "#")
	path, query, _ := strings.Cut(rest, "?")
	var parts []string
	for _, p := range strings.Split(query, "&") {
		if p != "" && p != "error" && !strings.HasPrefix(p, "error=") {
			parts = append(parts, p)
		}
	}
	out := path + "?" + strings.Join(append(parts, "error="+url.QueryEscape(code)), "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}
