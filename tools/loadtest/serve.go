package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/oidctest"
)

var body = []byte(`{"sub":"alice-0001","name":"Alice Example","email":"alice@example.com"}` + "\n")

// handler is the same in every variant.
var handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
})

// serveVariant serves variant on a free loopback port, prints "LISTEN addr"
// for the parent and serves until its stdin ends.
func serveVariant(variant, issuer, redisAddr, keyHex string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	var closers []func()
	switch variant {
	case "bare":
		mux.Handle("GET /api/me", handler)
	case "bff-memory", "bff-redis", "bff-redis-nocache":
		closers, err = mountBFF(mux, variant, "http://"+ln.Addr().String(), issuer, redisAddr, keyHex)
	case "scs-memory", "scs-redis":
		closers = mountSCS(mux, variant, redisAddr)
	default:
		return fmt.Errorf("unknown variant %q", variant)
	}
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("LISTEN %s\n", ln.Addr())
	// The parent holds our stdin: its end (or death) stops us.
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	for _, c := range closers {
		c()
	}
	return nil
}

// mountBFF mounts bff's routes and RequireSession in front of the handler,
// on Redis unless the variant is bff-memory, and returns what to close, in
// order.
func mountBFF(mux *http.ServeMux, variant, base, issuer, redisAddr, keyHex string) ([]func(), error) {
	key, err := hex.DecodeString(keyHex)
	if err != nil {
		return nil, fmt.Errorf("-key: %w", err)
	}
	o := bff.Options{
		Issuer: issuer, ClientID: oidctest.DefaultClientID, ClientSecret: oidctest.DefaultClientSecret,
		BaseURL: base, SecretKeys: [][]byte{key},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	var closers []func()
	if variant != "bff-memory" {
		pool := bff.NewRedisPool(redisAddr)
		closers = append(closers, func() { pool.Close() })
		o.Redis = pool
		o.DisableSessionCache = variant == "bff-redis-nocache"
	}
	auth, err := bff.New(o)
	if err != nil {
		return nil, err
	}
	closers = append([]func(){func() { auth.Close() }}, closers...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = auth.Ready(ctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/me", auth.RequireSession(handler))
	return closers, nil
}

// mountSCS mounts GET /login, which puts the user in a new scs session, and
// the hand-written check in front of the handler; it returns what to close.
func mountSCS(mux *http.ServeMux, variant, redisAddr string) []func() {
	var closers []func()
	sm := scs.New()
	if variant == "scs-redis" {
		pool := bff.NewRedisPool(redisAddr)
		closers = append(closers, func() { pool.Close() })
		sm.Store = redisstore.New(pool)
	}
	mux.Handle("GET /login", sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "user", "alice-0001")
		w.WriteHeader(http.StatusNoContent)
	})))
	// The hand-written check: a session with a user, else 401.
	mux.Handle("GET /api/me", sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sm.GetString(r.Context(), "user") == "" {
			http.Error(w, `{"error":"unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, r)
	})))
	return closers
}
