package bff

import (
	"encoding/json"
	"net/http"
	"time"
)

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

func (b *BFF) routes() {
	p := b.cfg.Prefix
	b.mux = http.NewServeMux()
	b.mux.HandleFunc("GET "+p+"/login", b.handleLogin)
	b.mux.HandleFunc("GET "+p+"/callback", b.tel.observeCallback(b.handleCallback))
	b.mux.HandleFunc("GET "+p+"/session", b.handleSession)
	b.mux.HandleFunc("POST "+p+"/logout", b.tel.observeLogout("bff.logout", false, b.handleLogout))
	b.mux.HandleFunc("GET "+p+"/logout/callback", b.handleLogoutCallback)
	b.mux.HandleFunc("POST "+p+"/backchannel-logout", b.tel.observeLogout("bff.backchannel_logout", true, b.handleBackchannelLogout))
	b.mux.HandleFunc("GET "+p+"/events", b.handleEvents)
	if b.keys != nil {
		b.mux.HandleFunc("GET "+p+"/jwks", b.handleJWKS)
	}
	// The catch-all below matches every method, so the mux's own 405 never
	// happens: answer it here for a route's path with another method (a GET
	// of /logout is no logout, and says so).
	allow := map[string]string{p + "/login": "GET, HEAD", p + "/callback": "GET, HEAD", p + "/session": "GET, HEAD",
		p + "/logout": "POST", p + "/logout/callback": "GET, HEAD", p + "/backchannel-logout": "POST", p + "/events": "GET, HEAD"}
	if b.keys != nil {
		allow[p+"/jwks"] = "GET, HEAD"
	}
	b.mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		if methods, ok := allow[r.URL.Path]; ok {
			w.Header().Set("Allow", methods)
			b.fail(w, r, errMethod)
			return
		}
		b.fail(w, r, newError(ErrBadRequest, http.StatusNotFound, "not_found", "No such route.", nil))
	})
}

// writeJSON writes a 200 JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
