package bff

import (
	"net/http"
	"strings"
	"time"
)

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
	s, err := b.store.load(r.Context(), id, now)
	if err == errNotFound {
		b.sessionCookie(w, "", -1)
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	if b.store.expired(s, now.UnixNano()) {
		last, err := b.store.end(r.Context(), s.key, endExpired)
		if err != nil {
			return nil, err
		}
		b.tel.sessionEnded(r.Context(), endExpired, last)
		b.sessionCookie(w, "", -1)
		return nil, errExpired
	}
	return s, nil
}
