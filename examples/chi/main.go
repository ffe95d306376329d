// Command chi is examples/basic on a chi router with sessions in Redis: the
// same page, /auth/, /api/me, /api/echo and /api/upstream/ (with the same
// handlers) and environment variables, except that BFF_REDIS_ADDR defaults
// to 127.0.0.1:6379 (unless BFF_REDIS_URL or BFF_REDIS_SENTINELS is set);
// it has no /api/stepup, /readyz or /metrics. Several instances that share Redis and BFF_SECRET_KEY serve the
// same sessions.
//
//	redis-server --save '' &
//	cd examples/chi && BFF_SECRET_KEY=$(openssl rand -base64 32) go run .
//
// then open http://localhost:8080 and sign in as alice / alice.
package main

import (
	"log/slog"
	"net/http"
	"os"

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

// routes are the example's routes on its BFF, on a chi router, with the
// handlers of examples/basic (exampleapp's).
func routes(app *exampleapp.App) http.Handler {
	auth := app.Auth
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Handle("/auth/*", auth)
	r.Group(func(r chi.Router) {
		r.Use(auth.RequireSession)
		r.Get("/api/me", exampleapp.Me)
		r.Post("/api/echo", exampleapp.Echo)
		if app.Upstream != nil {
			r.Handle("/api/upstream/*", http.StripPrefix("/api/upstream", auth.Proxy(app.Upstream, bff.ProxyOptions{})))
		}
	})
	r.Handle("/*", exampleapp.Page())
	return r
}
