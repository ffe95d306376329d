// Command basic is the runnable example of bff: a stdlib-only server with a
// static page, an API behind bff.RequireSession, and (with no BFF_ISSUER) an
// embedded development OpenID Provider on its own origin.
//
//	go run ./examples/basic
//
// then open http://localhost:8080 and sign in as alice / alice.
//
// Environment (all optional):
//
//	BFF_ADDR                  listen address (127.0.0.1:8080)
//	BFF_BASE_URL              public origin (http://localhost:8080)
//	BFF_ISSUER                the OpenID Provider; unset: the embedded development IdP
//	BFF_CLIENT_ID             client ID at the provider
//	BFF_CLIENT_SECRET         client secret at the provider
//	BFF_SCOPES                space-separated scopes (openid profile email offline_access)
//	BFF_REDIS_ADDR            host:port of Redis for sessions (in-memory)
//	BFF_SECRET_KEY            base64 of 32 bytes (random per process, with a warning)
//	BFF_REFRESH_SKEW          refresh access tokens this long before they expire (1m)
//	BFF_IDLE_TIMEOUT          sessions end after this long unused (12h)
//	BFF_EXPIRY_WARNING        /auth/events warns this long before a session ends (2m)
//	BFF_UPSTREAM_URL          downstream API proxied under /api/upstream/, WebSockets too (unset)
//	BFF_DEV_IDP_ADDR          listen address of the development IdP (127.0.0.1:8081)
//	BFF_DEV_ACCESS_TOKEN_TTL  access-token lifetime at the development IdP (1h)
//
// Routes:
//
//	/auth/...          sign-in, callback, session, sign-out, live session events (bff)
//	GET  /api/me       {"sub", "name", "email", "tokenExpiresAt"} (signed in)
//	POST /api/echo     echoes its JSON body (signed in, same origin)
//	/api/upstream/...  proxied to BFF_UPSTREAM_URL with the access token (signed in);
//	                   WebSockets only from the app's own origin
//	GET  /             the page (?error=<code> after a failed sign-in or sign-out)
package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gobff/bff"
	"github.com/gobff/bff/examples/internal/exampleapp"
)

func main() { exampleapp.Main(os.Getenv, routes) }

// routes are the example's routes on its BFF.
func routes(app *exampleapp.App) http.Handler {
	auth := app.Auth
	mux := http.NewServeMux()
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/me", auth.RequireSession(http.HandlerFunc(me)))
	mux.Handle("POST /api/echo", auth.RequireSession(http.HandlerFunc(echo)))
	if app.Upstream != nil {
		// The browser calls the downstream API through the BFF, which adds
		// the user's access token: /api/upstream/x goes to BFF_UPSTREAM_URL/x.
		mux.Handle("/api/upstream/", auth.RequireSession(http.StripPrefix("/api/upstream", auth.Proxy(app.Upstream))))
	}
	mux.Handle("/", exampleapp.Page())
	return mux
}

// meResponse is the JSON of GET /api/me.
type meResponse struct {
	Sub            string `json:"sub"`
	Name           string `json:"name,omitempty"`
	Email          string `json:"email"`
	TokenExpiresAt string `json:"tokenExpiresAt"` // RFC 3339; empty when the provider gave no expiry
}

// me answers who is signed in and until when the access token that a call
// to a downstream API would use is valid.
func me(w http.ResponseWriter, r *http.Request) {
	user, _ := bff.UserFrom(r.Context())
	tok, _ := bff.TokenFrom(r.Context())
	resp := meResponse{Sub: user.Subject, Name: user.Name, Email: user.Email}
	if !tok.Expiry.IsZero() {
		resp.TokenExpiresAt = tok.Expiry.UTC().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

// echo answers its JSON request body: an unsafe request that RequireSession
// accepts only from this origin.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case err != nil:
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, `{"error":"too_large","error_description":"The body is limited to 64 KiB."}`+"\n")
	case !json.Valid(body):
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_json","error_description":"The body is not JSON."}`+"\n")
	default:
		w.Write(body)
	}
}
