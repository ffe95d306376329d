package exampleapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/gobff/bff"
)

// App is what every example starts with: its configuration, its BFF and,
// without BFF_ISSUER, the development identity provider.
type App struct {
	*Config
	Auth   *bff.BFF
	DevIdP *DevIdP // nil with BFF_ISSUER
	Log    *slog.Logger

	closers []func()
}

// Setup changes an example's options before its BFF is made (to add
// metrics, say). The func it returns, if not nil, is called after the BFF
// is closed.
type Setup func(cfg *Config, opts *bff.Options) (release func(), err error)

// Start reads the configuration from getenv, starts the development IdP
// when no issuer is configured, runs setups and creates the BFF. Close
// releases them.
func Start(getenv func(string) string, log *slog.Logger, setups ...Setup) (_ *App, err error) {
	cfg, err := Load(getenv, log)
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Log: log}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if cfg.Issuer == "" {
		if a.DevIdP, err = cfg.StartDevIdP(log); err != nil {
			return nil, fmt.Errorf("development IdP: %w", err)
		}
		a.closers = append(a.closers, func() { a.DevIdP.Close() })
	}
	opts := cfg.Options(log)
	if opts.Redis != nil {
		a.closers = append(a.closers, func() { opts.Redis.Close() })
	}
	for _, setup := range setups {
		release, err := setup(cfg, &opts)
		if err != nil {
			return nil, err
		}
		if release != nil {
			a.closers = append(a.closers, release)
		}
	}
	if a.Auth, err = bff.New(opts); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { a.Auth.Close() })
	return a, nil
}

// Close stops the BFF, then what it uses.
func (a *App) Close() {
	for _, c := range slices.Backward(a.closers) {
		c()
	}
	a.closers = nil
}

// Serve serves h on a.Addr until ctx is done, then shuts down gracefully.
func (a *App) Serve(ctx context.Context, h http.Handler) error {
	log := a.Log
	ln, err := net.Listen("tcp", a.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Event streams (/auth/events) never end by themselves: end them when
	// shutting down, or Shutdown would wait for them.
	srv.RegisterOnShutdown(a.Auth.CloseEventStreams)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("example: listening; open the page in a browser", "addr", ln.Addr().String(), "url", a.BaseURL+"/")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("example: shutting down")
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

// Server is an example ready to serve: its App and the Handler of its
// routes.
type Server struct {
	*App
	Handler http.Handler
}

// Routes builds an example's handler on its App.
type Routes func(*App) http.Handler

// Build makes an example's Server from the environment: NewServer with the
// example's routes and setups.
type Build func(getenv func(string) string, log *slog.Logger) (*Server, error)

// NewServer starts the App from getenv (with setups) and builds its routes.
// Close releases it.
func NewServer(getenv func(string) string, log *slog.Logger, routes Routes, setups ...Setup) (*Server, error) {
	app, err := Start(getenv, log, setups...)
	if err != nil {
		return nil, err
	}
	return &Server{App: app, Handler: routes(app)}, nil
}

// Run serves the example until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, getenv func(string) string, logw io.Writer, build Build) error {
	log := slog.New(slog.NewTextHandler(logw, nil))
	s, err := build(getenv, log)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Serve(ctx, s.Handler)
}

// Main is an example's main: Run with getenv (os.Getenv) until SIGINT or
// SIGTERM; an error is printed and exits with status 1.
func Main(getenv func(string) string, build Build) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, getenv, os.Stderr, build); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
