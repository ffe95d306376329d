// Command chi is examples/basic on a chi router with sessions in Redis: the
// same page, routes and environment variables, except that BFF_REDIS_ADDR
// defaults to 127.0.0.1:6379. Several instances that share Redis and
// BFF_SECRET_KEY serve the same sessions.
//
//	redis-server --save '' &
//	cd examples/chi && BFF_SECRET_KEY=$(openssl rand -base64 32) go run .
//
// then open http://localhost:8080 and sign in as alice / alice.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/gobff/bff"
	"github.com/gobff/bff/examples/internal/exampleapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// newServer returns the app's router, its listen address, its BFF, and a
// function that releases everything.
func newServer(getenv func(string) string, log *slog.Logger) (http.Handler, string, *bff.BFF, func(), error) {
	env := func(k string) string {
		if v := getenv(k); v != "" || k != "BFF_REDIS_ADDR" {
			return v
		}
		return "127.0.0.1:6379"
	}
	cfg, err := exampleapp.Load(env, log)
	if err != nil {
		return nil, "", nil, nil, err
	}
	var idp *exampleapp.DevIdP
	if cfg.Issuer == "" {
		if idp, err = cfg.StartDevIdP(log); err != nil {
			return nil, "", nil, nil, err
		}
	}
	opts := cfg.Options(log) // with BFF_REDIS_ADDR: Options.Redis = bff.NewRedisPool(addr)
	auth, err := bff.New(opts)
	closeAll := func() {
		if auth != nil {
			auth.Close()
		}
		opts.Redis.Close()
		if idp != nil {
			idp.Close()
		}
	}
	if err != nil {
		closeAll()
		return nil, "", nil, nil, err
	}

	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Handle("/auth/*", auth)
	r.Group(func(r chi.Router) {
		r.Use(auth.RequireSession)
		r.Get("/api/me", me)
		r.Post("/api/echo", echo)
		if cfg.Upstream != nil {
			r.Handle("/api/upstream/*", http.StripPrefix("/api/upstream", auth.Proxy(cfg.Upstream)))
		}
	})
	r.Handle("/*", exampleapp.Page())
	return r, cfg.Addr, auth, closeAll, nil
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

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, getenv func(string) string, logw io.Writer) error {
	log := slog.New(slog.NewTextHandler(logw, nil))
	h, addr, auth, closeAll, err := newServer(getenv, log)
	if err != nil {
		return err
	}
	defer closeAll()
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	// Event streams (/auth/events) never end by themselves: end them when
	// shutting down, or Shutdown would wait for them.
	srv.RegisterOnShutdown(auth.CloseEventStreams)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("example: listening", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
