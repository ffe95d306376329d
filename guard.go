package bff

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gobff/bff/internal/redirect"
)

// RequireLogin guards pages of a server-rendered app. It is RequireSession
// (the same refresh, cross-origin check and cache), except that a
// signed-out browser navigation (Sec-Fetch-Mode: navigate; without Fetch
// Metadata, a GET or HEAD that accepts text/html) is sent to sign in with
// 303 to Prefix+"/login?returnTo=" and the URI it asked for (path and
// query, as the browser sent them), and comes back there afterwards. A
// form POST that finds no session comes back with a GET of its action.
// Requests that are not navigations (fetch, htmx) get RequireSession's JSON
// 401, and a failure that is not "signed out" (403, 503) is never a
// sign-in.
func (b *BFF) RequireLogin(next http.Handler) http.Handler { return b.guard(guardLogin, next) }

// OptionalSession is for pages that anyone may see and that personalise
// when someone is signed in: with a session, the request reaches next with
// the user and a fresh access token in its context, as with
// RequireSession; without one (no cookie, or one that is unknown, ended or
// expired, which is cleared), it reaches next without them (UserFrom
// reports false). A request without a session cookie costs no store
// lookup. Unsafe requests from another origin are refused (403) either way,
// and an unavailable store or provider is a 503 (whether the visitor is
// signed in is not known then).
func (b *BFF) OptionalSession(next http.Handler) http.Handler { return b.guard(guardOptional, next) }

// guardMode is what a guard does for a request without a session.
type guardMode uint8

const (
	guardAPI      guardMode = iota // 401 (RequireSession)
	guardLogin                     // navigations sent to sign in (RequireLogin)
	guardOptional                  // pass through without a user (OptionalSession)
)

// guard is the one implementation of RequireSession, RequireLogin and
// OptionalSession.
func (b *BFF) guard(mode guardMode, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := b.checkOrigin(r); err != nil {
			b.fail(w, r, err)
			return
		}
		s, err := b.authenticate(w, r)
		if err != nil {
			if mode != guardAPI && signedOut(err) {
				switch {
				case mode == guardOptional:
					next.ServeHTTP(w, r)
					return
				case isNavigation(r):
					b.toLogin(w, r)
					return
				}
			}
			b.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey, s)))
	})
}

// checkOrigin refuses unsafe methods, and upgrades (WebSocket handshakes),
// from another origin.
func (b *BFF) checkOrigin(r *http.Request) error {
	switch {
	case !safeMethod(r.Method):
		return b.checkCSRF(r)
	case isUpgrade(r):
		return b.checkUpgrade(r)
	}
	return nil
}

// signedOut reports whether err means "no valid session" (401).
func signedOut(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized
}

// toLogin sends a signed-out navigation to sign in. A navigation that
// brings back a failed sign-in (?error=, see failTo) would start the next
// sign-in at once, and whoever pressed "Deny" would be back at the
// provider: it goes to ErrorPath (or "/") with the error instead, unless it
// is that page.
func (b *BFF) toLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	returnTo := currentReturnTo(r)
	if code := r.URL.Query().Get("error"); isFailureCode(code) {
		dest := cmp.Or(b.cfg.ErrorPath, "/")
		if path, _, _ := strings.Cut(dest, "?"); path != strings.SplitN(returnTo, "?", 2)[0] {
			http.Redirect(w, r, withError(dest, code), http.StatusSeeOther)
			return
		}
	}
	http.Redirect(w, r, b.cfg.Prefix+"/login?returnTo="+url.QueryEscape(returnTo), http.StatusSeeOther)
}

// currentReturnTo is the URI of r as the browser sent it (before any
// http.StripPrefix), as a returnTo: its path and query, or its path alone
// when the query makes it too long, or "/" when it is no valid returnTo.
func currentReturnTo(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return "/"
	}
	path := u.EscapedPath()
	if u.RawQuery != "" {
		if rt, err := redirect.Path(path + "?" + u.RawQuery); err == nil {
			return rt
		}
	}
	if rt, err := redirect.Path(path); err == nil {
		return rt
	}
	return "/"
}

// RequireSession guards an API: without a valid session it answers 401
// with a small JSON body (never a redirect); unsafe methods and upgrades
// (WebSocket handshakes) from another origin are refused with 403. With a
// session, the request reaches next with the user (UserFrom) and an access
// token valid for at least Options.RefreshSkew (TokenFrom) in its context;
// an access token about to expire is refreshed on the server first. The
// response writer is passed through untouched, so streaming (http.Flusher)
// and upgrades (http.Hijacker) work.
//
// The path of a request whose token is fresh reads the session from this
// instance's cache (or at most once from the store), writes nothing (except
// once per Options.TouchInterval, for the idle timeout), takes no lock and
// allocates only the request's context.
func (b *BFF) RequireSession(next http.Handler) http.Handler { return b.guard(guardAPI, next) }

func safeMethod(m string) bool { return m == "GET" || m == "HEAD" || m == "OPTIONS" }

func (b *BFF) checkCSRF(r *http.Request) error {
	if !b.sameOrigin(r) {
		return errCSRF
	}
	if b.cfg.CSRFHeader != "" && r.Header.Get(b.cfg.CSRFHeader) == "" {
		return errCSRF
	}
	return nil
}

// Pre-built rejections: the rejection path allocates nothing of its own.
var (
	errNoCookie  = errUnauth(errors.New("no session cookie"))
	errBadCookie = errUnauth(errors.New("malformed session cookie"))
	errNoSession = errUnauth(errors.New("unknown session"))
	errExpired   = errUnauth(errors.New("session expired"))
)

// authenticate finds the request's live session and refreshes its access
// token when it is about to expire.
func (b *BFF) authenticate(w http.ResponseWriter, r *http.Request) (*session, error) {
	t := b.cfg.Now() // the request's one clock reading
	s, err := b.liveSessionAt(w, r, t)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	now := t.UnixNano()
	if b.needsRefresh(s, now) {
		s, err = b.refresh(ctx, s, now)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
				b.sessionCookie(w, "", -1)
			}
			return nil, err
		}
	}
	if now-s.rec.LastSeen >= int64(b.cfg.TouchInterval) {
		s = b.touch(ctx, s, now)
	}
	return s, nil
}
