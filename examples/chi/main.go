// Command chi is examples/basic on a chi router with sessions in Redis: the
// same page, routes and environment variables, except that BFF_REDIS_ADDR
// defaults to 127.0.0.1:6379 (unless BFF_REDIS_URL or BFF_REDIS_SENTINELS
// is set). Several instances that share Redis and BFF_SECRET_KEY serve the
// same sessions.
//
//	redis-server --save '' &
//	cd examples/chi && BFF_SECRET_KEY=$(openssl rand -base64 32) go run .
//
// then open http://localhost:8080 and sign in as alice / alice.
package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/gobff/bff"
	"github.com/gobff/bff/examples/internal/exampleapp"
)

func main() { exampleapp.Main(os.Getenv, newServer) }

// redisByDefault is getenv with BFF_REDIS_ADDR defaulting to
// 127.0.0.1:6379 (unless BFF_REDIS_URL or BFF_REDIS_SENTINELS names
// another Redis).
func redisByDefault(getenv func(string) string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" || k != "BFF_REDIS_ADDR" || getenv("BFF_REDIS_URL") != "" || getenv("BFF_REDIS_SENTINELS") != "" {
			return v
		}
		return "127.0.0.1:6379"
	}
}

// newServer builds the app from the environment (Redis by default).
// Close releases it.
func newServer(getenv func(string) string, log *slog.Logger) (*exampleapp.Server, error) {
	return exampleapp.NewServer(redisByDefault(getenv), log, routes)
}

// routes are the example's routes on its BFF, on a chi router.
func routes(app *exampleapp.App) http.Handler {
	auth := app.Auth
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Handle("/auth/*", auth)
	r.Group(func(r chi.Router) {
		r.Use(auth.RequireSession)
		r.Get("/api/me", me)
		r.Post("/api/echo", echo)
		if app.Upstream != nil {
			r.Handle("/api/upstream/*", http.StripPrefix("/api/upstream", auth.Proxy(app.Upstream, bff.ProxyOptions{})))
		}
	})
	r.Handle("/*", exampleapp.Page())
	return r
}

func me(w http.ResponseWriter, r *http.Request) {
	user, _ := bff.UserFrom(r.Context())
	tok, _ := bff.TokenFrom(r.Context())
	resp := map[string]string{"sub": user.Subject, "name": user.Name, "email": user.Email, "tokenExpiresAt": ""}
	if !tok.Expiry.IsZero() {
		resp["tokenExpiresAt"] = tok.Expiry.UTC().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil || !json.Valid(body) {
		http.Error(w, `{"error":"invalid_json"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}
