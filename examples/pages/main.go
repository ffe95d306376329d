// Command pages is a server-rendered example of bff: html/template pages,
// no JavaScript except an EventSource for the live sign-out and the
// idle-timeout warning, and (with no BFF_ISSUER) the embedded development
// OpenID Provider on its own origin.
//
//	go run ./examples/pages
//
// then open http://localhost:8080 and sign in as alice / alice.
//
// Environment: the BFF_* variables of examples/basic (BFF_ADDR,
// BFF_BASE_URL, BFF_ISSUER, BFF_CLIENT_ID, BFF_SECRET_KEY, the Redis ones,
// BFF_IDLE_TIMEOUT, BFF_EXPIRY_WARNING, BFF_DEV_IDP_ADDR, ...); it serves no
// metrics and no step-up route.
//
// Routes:
//
//	/auth/...       sign-in, callback, session, sign-out, live session events (bff)
//	GET /           public home page, personalised when signed in (bff.OptionalSession);
//	                ?error=<code> after a failed sign-in or sign-out
//	GET /account    the signed-in user's page (bff.RequireLogin: signed out, a
//	                browser is sent to sign in and comes back here)
//	GET /static/... the style sheet and events.js
package main

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"

	"github.com/gobff/bff"
	"github.com/gobff/bff/examples/internal/exampleapp"
)

func main() { exampleapp.Main(os.Getenv, newServer) }

// newServer builds the app from the environment. Close releases it.
func newServer(getenv func(string) string, log *slog.Logger) (*exampleapp.Server, error) {
	return exampleapp.NewServer(getenv, log, routes)
}

//go:embed templates static
var files embed.FS

var pages = template.Must(template.ParseFS(files, "templates/*.html"))

// routes are the example's routes on its BFF.
func routes(app *exampleapp.App) http.Handler {
	static, _ := fs.Sub(files, "static")
	mux := http.NewServeMux()
	mux.Handle("/auth/", app.Auth)
	mux.Handle("GET /{$}", app.Auth.OptionalSession(page("home.html", app.Log)))
	mux.Handle("GET /account", app.Auth.RequireLogin(page("account.html", app.Log)))
	mux.Handle("GET /static/", http.StripPrefix("/static", http.FileServerFS(static)))
	return secureHeaders(mux)
}

// pageData is what the templates show.
type pageData struct {
	User    *bff.User         // nil when signed out
	Failure string            // a failed sign-in or sign-out, in words
	Endings map[string]string // why a session ends, for events.js
}

// page renders a template with the signed-in user, if any.
func page(name string, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := pageData{Endings: endings}
		if u, ok := bff.UserFrom(r.Context()); ok {
			d.User = &u
		}
		if code := r.URL.Query().Get("error"); code != "" {
			d.Failure = failureText(code)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := pages.ExecuteTemplate(w, name, d); err != nil {
			log.Error("example: rendering a page", "page", name, "err", err)
		}
	})
}

// failures are the ?error= codes of a failed sign-in or sign-out, in
// words. An unknown code is not shown: the address bar is anyone's to
// write.
var failures = map[string]string{
	"access_denied":           "Sign-in was cancelled, or the identity provider refused it.",
	"login_expired":           "The sign-in took too long or was already used. Please sign in again.",
	"login_failed":            "The sign-in could not be completed. Please try again.",
	"login_refused":           "This account may not use the application.",
	"temporarily_unavailable": "Signing in or out is not possible right now. Please try again shortly.",
	"invalid_request":         "The sign-in or sign-out request was not valid. Please try again.",
	"cross_origin":            "A sign-out from another site was refused.",
	"login_required":          "Please sign in at the identity provider.",
	"consent_required":        "The identity provider needs your consent first.",
	"interaction_required":    "The identity provider needs you to act first.",
}

// endings are the reasons of /auth/events's "ended", in words.
var endings = map[string]string{
	"logout":         "You signed out in another tab or window.",
	"backchannel":    "You were signed out at the identity provider.",
	"revoked":        "Your session was ended.",
	"expired":        "Your session expired.",
	"refresh_failed": "Your session could not be renewed. Please sign in again.",
	"limit":          "You signed in on too many devices, so this session was ended.",
}

func failureText(code string) string {
	if text, ok := failures[code]; ok {
		return text
	}
	return "Signing in or out failed."
}

// secureHeaders sets what every page of the app needs: no caching (the
// back button must not show a signed-in page after sign-out), and a CSP
// that allows only this origin's scripts.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}
