// Package bff is a Backend for Frontend for browser apps that sign users in
// with OpenID Connect: the browser never holds a token.
//
// The Go backend runs the authorization-code flow (PKCE, state, nonce) as a
// confidential client, keeps the ID, access and refresh tokens sealed in a
// server-side session store, and gives the browser only an HttpOnly,
// SameSite=Strict, __Host- session cookie. The browser app calls its API with
// plain fetch(url, {credentials: 'same-origin'}); RequireSession refreshes
// tokens on the server, refuses cross-origin unsafe requests, and hands the
// signed-in user and a fresh access token to the handler (UserFrom,
// TokenFrom). Server-rendered pages use RequireLogin (a signed-out browser
// is sent to sign in and comes back) and OptionalSession (public pages
// that personalise); GET /auth/events tells every open tab when its session
// ends.
//
// # Routes
//
// A *BFF is an http.Handler serving, under Options.Prefix (default /auth):
//
//	GET  /auth/login?returnTo=/path  start sign-in (also prompt, login_hint, acr_values, max_age, ui_locales)
//	GET  /auth/callback              the provider's redirect back
//	GET  /auth/session               the user's claims and session expiry as JSON (401 when signed out)
//	POST /auth/logout                end the session (here, at the provider, and on every instance)
//	GET  /auth/logout/callback       the provider's redirect back after logout
//	POST /auth/backchannel-logout    OpenID Connect Back-Channel Logout
//	GET  /auth/events                the session's live events (Server-Sent Events; 401 when signed out)
//	GET  /auth/jwks                  the client's public keys (with Options.ClientKeys)
//
// RequireAuthLevel guards routes that need a stronger or more recent sign-in
// (RFC 9470 step-up).
//
// # Example
//
//	auth, err := bff.New(bff.Options{
//		Issuer:       "https://idp.example",
//		ClientID:     "my-app",
//		ClientSecret: os.Getenv("CLIENT_SECRET"),
//		BaseURL:      "https://app.example",
//		SecretKeys:   [][]byte{key}, // 32 bytes
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	mux := http.NewServeMux()
//	mux.Handle("/auth/", auth)
//	mux.Handle("GET /api/me", auth.RequireSession(http.HandlerFunc(me)))
package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gobff/bff/internal/bodylimit"
	"github.com/gobff/bff/internal/flight"
	"github.com/gobff/bff/internal/keyset"
	"github.com/gobff/bff/internal/seal"
)

// BFF serves the auth routes and guards the API. Create it with New; it is
// safe for concurrent use. Call Close when done with it.
type BFF struct {
	cfg    *config
	log    *slog.Logger
	sealer *seal.Sealer
	store  *sessionStore
	events *eventHub
	cop    *http.CrossOriginProtection
	mux    *http.ServeMux
	client *http.Client
	tel    *telemetry

	flights flight.Group[*session]
	retryAt retryTimes
	txSeq   atomic.Uint32 // rotates the first login-cookie slot tried

	health    atomic.Pointer[healthReport] // the latest; see Health
	healthRun flight.Group[*healthReport]

	prov          atomic.Pointer[provider]
	misconfigured atomic.Bool   // discovery found a provider that does not fit Options
	discover      chan struct{} // a request asks for a discovery attempt now
	ready         chan struct{} // closed when discovery succeeded
	keys          *clientKeys   // Options.ClientKeys, or nil

	hostRewriteOnce sync.Once
	closeOnce       sync.Once
	closed          chan struct{}
	wg              sync.WaitGroup
}

// provider is the result of discovery.
type provider struct {
	oauth            oauth2.Config
	verifier         *oidc.IDTokenVerifier
	logoutVerifier   *oidc.IDTokenVerifier // signature, iss, aud; logouttoken.go checks the rest
	userinfoURL      string
	revocationURL    string
	endSessionURL    string
	issParamRequired bool
	tenants          *tenantIssuer // a multi-tenant issuer template (tenant.go), or nil
	keys             *keyset.Set
	x                providerExtras // discovery.go
}

// Locker serializes writes to one session across instances that share a
// store. Lock takes the lock called name, waiting until ctx is done; the
// lock expires after ttl even if never released (a crashed holder). unlock
// releases it only if it is still ours.
type Locker interface {
	Lock(ctx context.Context, name string, ttl time.Duration) (unlock func(), err error)
}

// New validates opts and returns a BFF. It does not contact the provider:
// discovery runs in the background and is retried until it succeeds; until
// then the login route answers 503. See Ready.
func New(opts Options) (*BFF, error) { return newBFF(opts, hooks{}) }

// newBFF is New with the tests' hooks.
func newBFF(opts Options, h hooks) (*BFF, error) {
	cfg, err := validate(opts)
	if err != nil {
		return nil, err
	}
	cfg.hooks = h
	if cfg.newTimer == nil {
		cfg.newTimer = realTimer
	}
	if cfg.misconfigRetry == 0 {
		cfg.misconfigRetry = misconfigRetry
	}
	cfg.Logger = withTraceIDs(cfg.Logger)
	b := &BFF{
		cfg:      cfg,
		log:      cfg.Logger,
		cop:      http.NewCrossOriginProtection(),
		discover: make(chan struct{}, 1),
		ready:    make(chan struct{}),
		closed:   make(chan struct{}),
		events:   newEventHub(),
	}
	for _, o := range cfg.TrustedOrigins {
		b.cop.AddTrustedOrigin(o)
	}
	if len(cfg.ClientKeys) > 0 {
		if b.keys, err = newClientKeys(cfg.ClientKeys, cfg.ClientCertificate); err != nil {
			return nil, err
		}
	}
	b.sealer, err = seal.New(cfg.keys, seal.PurposeSession, seal.PurposeTransaction, seal.PurposeIndex)
	if err != nil {
		return nil, fieldErr("SecretKeys", "%v", err)
	}
	if b.tel, err = newTelemetry(cfg, &b.prov); err != nil {
		return nil, err
	}
	b.client = bodylimit.Client(b.tel.providerClient(cfg.HTTPClient), 1<<20)

	b.store = newSessionStore(cfg, b.sealer, b.lockTTL())
	if err := b.tel.attach(b.store); err != nil {
		b.store.close()
		return nil, err
	}
	b.routes()
	b.wg.Add(1)
	go b.discoveryLoop()
	return b, nil
}

// Close stops background work (discovery retries, the invalidation
// subscriber, the memory store's cleanup) and ends the event streams
// (CloseEventStreams), waiting for them. The BFF must not be used after.
func (b *BFF) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.CloseEventStreams()
		b.events.wg.Wait()
		b.wg.Wait()
		b.tel.close()
		b.store.close()
	})
	return nil
}

// Ready waits until discovery has succeeded or ctx is done. Use it in a
// readiness probe; serving does not need it.
func (b *BFF) Ready(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: identity provider discovery: %w", ErrUnavailable, ctx.Err())
	}
}

// ServeHTTP serves the auth routes under Options.Prefix.
func (b *BFF) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	b.mux.ServeHTTP(w, r)
}

// fail logs err (with its cause) and hands it to the error handler.
func (b *BFF) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := err.(*Error) // the usual case, without errors.As's allocation
	if !ok {
		var wrapped *Error
		if !errors.As(err, &wrapped) {
			wrapped = newError(err, http.StatusInternalServerError, "server_error", "Internal error.", nil)
		}
		e = wrapped
	}
	noteOutcome(w, e.Code)
	switch {
	case errors.Is(e.Err, errProviderPending):
		// The discovery loop logs the cause, once.
		b.log.DebugContext(r.Context(), "bff: request failed: the provider is not ready", "method", r.Method, "path", r.URL.Path, "status", e.Status)
	case e.Status >= 500:
		b.log.WarnContext(r.Context(), "bff: request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", e.Err)
	case e == errCSRF:
		b.log.InfoContext(r.Context(), "bff: request refused", append([]any{"method", r.Method, "path", r.URL.Path,
			"status", e.Status, "err", e.Err}, originAttrs(r)...)...)
	case e.Status == http.StatusUnauthorized:
		// Checked first: building the arguments allocates, on every
		// rejected request.
		if b.log.Enabled(r.Context(), slog.LevelDebug) {
			b.log.DebugContext(r.Context(), "bff: unauthenticated", "path", r.URL.Path, "err", e.Err)
		}
	default:
		b.log.InfoContext(r.Context(), "bff: request refused", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", e.Err)
	}
	b.cfg.ErrorHandler(w, r, e)
}

// clientContext makes go-oidc and x/oauth2 use the bounded client.
func (b *BFF) clientContext(ctx context.Context) context.Context {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, b.client)
	return oidc.ClientContext(ctx, b.client)
}

// provider returns the discovered provider, or asks for a discovery attempt
// and returns nil.
func (b *BFF) provider() *provider {
	if p := b.prov.Load(); p != nil {
		return p
	}
	select {
	case b.discover <- struct{}{}:
	default:
	}
	return nil
}
