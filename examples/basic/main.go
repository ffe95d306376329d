// Command basic is the runnable example of bff: a stdlib-only server with a
// static page, an API behind bff.RequireSession, and (with no BFF_ISSUER) an
// embedded development OpenID Provider on its own origin.
//
//	cd examples/basic && go run .
//
// then open http://localhost:8080 and sign in as alice / alice.
//
// Environment (all optional):
//
//	BFF_ADDR                  listen address (127.0.0.1:8080)
//	BFF_BASE_URL              public origin (http://localhost:8080)
//	BFF_ISSUER                the OpenID Provider; unset: the embedded development IdP
//	BFF_CLIENT_ID             client ID at the provider
//	BFF_CLIENT_SECRET         client secret at the provider (optional with BFF_CLIENT_KEY)
//	BFF_CLIENT_KEY            path of a PEM private key (EC P-256 or RSA): private_key_jwt instead of a secret
//	BFF_SCOPES                space-separated scopes (openid profile email offline_access)
//	BFF_AUTH_PARAMS           URL-query-encoded parameters for every sign-in (access_type=offline&audience=...)
//	BFF_PAR                   pushed authorization requests: auto, never, require (auto)
//	BFF_STEPUP_ACR            space-separated acr values GET /api/stepup requires (unset: no such route)
//	BFF_CLIENT_CERT           path of the PEM certificate of BFF_CLIENT_KEY: x5t in assertions (Entra ID)
//	BFF_TENANTS               space-separated tenant IDs of a multi-tenant issuer (Entra ID common/organizations)
//	BFF_PROVIDER_LOGOUT       sign-out at the provider: redirect-back, no-return, skip, cognito (redirect-back)
//	BFF_CONSENT_PROMPT        0: no prompt=consent with offline_access (1)
//	BFF_INSECURE_ALLOW_NO_PKCE 1: accept a provider that does not advertise PKCE S256 (0)
//	BFF_REDIS_ADDR            host:port of Redis for sessions (in-memory)
//	BFF_REDIS_URL             instead: redis:// or rediss:// (TLS) URL, user:password@ and /database allowed
//	BFF_REDIS_SENTINELS       comma-separated host:port of Redis Sentinels (BFF_REDIS_URL then without host)
//	BFF_REDIS_MASTER          the master name the sentinels monitor
//	BFF_SECRET_KEY            base64 of 32 bytes (random per process, with a warning)
//	BFF_REFRESH_SKEW          refresh access tokens this long before they expire, at most half
//	                          the token's lifetime (1m)
//	BFF_IDLE_TIMEOUT          sessions end after this long unused (12h)
//	BFF_EXPIRY_WARNING        /auth/events warns this long before a session ends (2m)
//	BFF_UPSTREAM_URL          downstream API proxied under /api/upstream/, WebSockets too (unset)
//	BFF_DEV_IDP_ADDR          listen address of the development IdP (127.0.0.1:8081)
//	BFF_DEV_ACCESS_TOKEN_TTL  access-token lifetime at the development IdP (1h)
//	BFF_METRICS               1: OpenTelemetry metrics in Prometheus format at GET /metrics; 0: none (1)
//
// Routes:
//
//	/auth/...          sign-in, callback, session, sign-out, live session events (bff)
//	GET  /api/me       {"sub", "name", "email", "tokenExpiresAt"} (signed in)
//	POST /api/echo     echoes its JSON body (signed in, same origin)
//	GET  /api/stepup   {"acr", "authTime"} (signed in at one of BFF_STEPUP_ACR; else 401
//	                   insufficient_user_authentication; only with BFF_STEPUP_ACR)
//	/api/upstream/...  proxied to BFF_UPSTREAM_URL with the access token (signed in);
//	                   WebSockets only from the app's own origin
//	GET  /metrics      bff's metrics, Prometheus text format (BFF_METRICS=1)
//	GET  /readyz       bff's health: {"status", "checks"}, 200 ok or degraded, 503 down
//	GET  /             the page (?error=<code> after a failed sign-in or sign-out)
package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/gobff/bff"
	"github.com/gobff/bff/examples/internal/exampleapp"
)

func main() { exampleapp.Main(os.Getenv, newServer) }

// newServer builds the app from the environment, with metrics when
// BFF_METRICS asks for them. Close releases it.
func newServer(getenv func(string) string, log *slog.Logger) (*exampleapp.Server, error) {
	var metrics http.Handler
	withMetrics := func(cfg *exampleapp.Config, opts *bff.Options) (func(), error) {
		if !cfg.Metrics {
			return nil, nil
		}
		mp, h, shutdown, err := newMetrics()
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		opts.MeterProvider, metrics = mp, h
		return shutdown, nil
	}
	return exampleapp.NewServer(getenv, log, func(app *exampleapp.App) http.Handler { return routes(app, metrics) }, withMetrics)
}

// routes are the example's routes on its BFF (the handlers, shared with
// examples/chi, are exampleapp's); metrics, when not nil, serves /metrics.
func routes(app *exampleapp.App, metrics http.Handler) http.Handler {
	auth := app.Auth
	mux := http.NewServeMux()
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/me", auth.RequireSession(http.HandlerFunc(exampleapp.Me)))
	mux.Handle("POST /api/echo", auth.RequireSession(http.HandlerFunc(exampleapp.Echo)))
	if len(app.StepUpACR) > 0 {
		// Step-up (RFC 9470): a 401 that names the acr values to sign in
		// with (/auth/login?acr_values=...&returnTo=...).
		mux.Handle("GET /api/stepup", auth.RequireSession(auth.RequireAuthLevel(app.StepUpACR, 0)(http.HandlerFunc(exampleapp.StepUp))))
	}
	if app.Upstream != nil {
		// The browser calls the downstream API through the BFF, which adds
		// the user's access token: /api/upstream/x goes to BFF_UPSTREAM_URL/x.
		mux.Handle("/api/upstream/", auth.RequireSession(http.StripPrefix("/api/upstream", auth.Proxy(app.Upstream, bff.ProxyOptions{}))))
	}
	mux.Handle("GET /readyz", auth.HealthHandler())
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.Handle("/", exampleapp.Page())
	return mux
}
