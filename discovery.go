package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gobff/bff/internal/keyset"
	"golang.org/x/oauth2"
)

// errProviderPending marks the errors of requests that need the provider
// while discovery has not succeeded: their cause is logged by the
// discovery loop, once, not by every request.
var errProviderPending = errors.New("provider discovery has not succeeded yet")

var errNotReady = newError(ErrUnavailable, http.StatusServiceUnavailable, "temporarily_unavailable",
	"The identity provider is not reachable yet; try again shortly.", errProviderPending)

var errMisconfigured = newError(ErrMisconfigured, http.StatusInternalServerError, "misconfigured",
	"Sign-in is misconfigured: the identity provider does not match this app's settings. The administrator must fix it (see the server log).",
	errProviderPending)

// notReady is the error of a request that needs the provider before
// discovery succeeded.
func (b *BFF) notReady() *Error {
	if b.misconfigured.Load() {
		return errMisconfigured
	}
	return errNotReady
}

// configError is a discovery document that does not fit Options: not a
// network fault, so retrying at once is pointless.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErr(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// misconfigRetry is how often discovery is retried while the provider
// does not match Options, in case it is being fixed.
const misconfigRetry = time.Minute

// discoveryLoop fetches the discovery document until it succeeds. A
// network fault or a bad answer is retried with backoff (1 s doubling to
// 30 s, or at once when a request asks); a document that does not fit
// Options (misconfiguration) every minute, whatever requests ask. Each
// distinct cause is logged once.
func (b *BFF) discoveryLoop() {
	defer b.wg.Done()
	backoff := time.Second
	var lastCause string
	for {
		last := time.Now()
		err := b.discoverOnce()
		if err == nil {
			b.misconfigured.Store(false)
			close(b.ready)
			return
		}
		misconfigured := b.reportDiscoveryError(err, lastCause, backoff)
		lastCause = err.Error()
		wait, nudge := backoff, b.discover
		if misconfigured {
			wait, nudge = b.cfg.misconfigRetry, nil // a nil channel never fires
		}
		t := time.NewTimer(wait)
		select {
		case <-b.closed:
			t.Stop()
			return
		case <-nudge:
			t.Stop()
		case <-t.C:
			backoff = min(2*backoff, 30*time.Second)
		}
		// Requests may ask for an attempt at once, but a flood of them
		// makes at most one attempt per second.
		if wait := time.Second - time.Since(last); wait > 0 {
			select {
			case <-b.closed:
				return
			case <-time.After(wait):
			}
		}
	}
}

// reportDiscoveryError records and logs a failed discovery (a cause seen
// on the previous attempt too only at Debug level), and reports whether it
// is a misconfiguration.
func (b *BFF) reportDiscoveryError(err error, lastCause string, backoff time.Duration) bool {
	level := func(l slog.Level) slog.Level {
		if err.Error() == lastCause {
			return slog.LevelDebug
		}
		return l
	}
	ctx := context.Background()
	var mismatch *oidc.IssuerMismatchError
	var cfgErr *configError
	switch {
	case errors.As(err, &mismatch):
		// Logged before sign-ins answer 500, so that the log says why first.
		b.log.Log(ctx, level(slog.LevelError),
			"bff: the provider's discovery document names another issuer; sign-ins answer 500 (misconfigured) until it is fixed",
			"issuer", b.cfg.Issuer, "discovered_issuer", mismatch.Discovered, "hint", issuerHint(b.cfg.Issuer, mismatch.Discovered),
			"retry_in", b.cfg.misconfigRetry)
		b.misconfigured.Store(true)
		return true
	case errors.As(err, &cfgErr):
		b.log.Log(ctx, level(slog.LevelError),
			"bff: the provider does not match the configuration; sign-ins answer 500 (misconfigured) until it is fixed",
			"issuer", b.cfg.Issuer, "err", err, "retry_in", b.cfg.misconfigRetry)
		b.misconfigured.Store(true)
		return true
	}
	b.misconfigured.Store(false)
	b.log.Log(ctx, level(slog.LevelWarn), "bff: provider discovery failed; sign-ins answer 503 until it succeeds",
		"issuer", b.cfg.Issuer, "retry_in", backoff, "err", err)
	return false
}

// issuerHint says how to fix an issuer mismatch.
func issuerHint(configured, discovered string) string {
	switch {
	case strings.TrimSuffix(configured, "/") == strings.TrimSuffix(discovered, "/"):
		return fmt.Sprintf("set Options.Issuer to %q exactly: the trailing slash matters", discovered)
	case strings.Contains(discovered, "{"):
		return "the provider's issuer is a template (a multi-tenant endpoint such as Entra ID's common or organizations): use the issuer of one tenant, or list the tenants in Options.Tenants"
	}
	return "set Options.Issuer to the issuer of the discovery document exactly, or check that it names the right provider"
}

// providerExtras is what discovery adds for sign-in parameters, client
// authentication and PAR.
type providerExtras struct {
	claimsParam bool         // claims_parameter_supported
	parURL      string       // the PAR endpoint to push to; "" for none
	auth        clientAuth   // how this client authenticates
	tokenClient *http.Client // for the token endpoint, with auth
}

// discoveryExtras are the discovery document's fields that discoverExtras
// reads.
type discoveryExtras struct {
	Token           string   `json:"token_endpoint"`
	AuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
	AuthSigningAlgs []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	PAR             string   `json:"pushed_authorization_request_endpoint"`
	RequirePAR      bool     `json:"require_pushed_authorization_requests"`
	ClaimsParam     bool     `json:"claims_parameter_supported"`
	Backchannel     bool     `json:"backchannel_logout_supported"`
}

// discoverExtras completes p from the discovery document: the client
// authentication method (a configErr when the provider accepts none that
// Options can do), PAR per Options.PAR, and the claims parameter; then it
// logs, once, what the provider lacks and what bff does instead.
func (b *BFF) discoverExtras(op *oidc.Provider, p *provider) error {
	var d discoveryExtras
	if err := op.Claims(&d); err != nil {
		return fmt.Errorf("discovery document: %w", err)
	}
	auth, err := b.chooseClientAuth(d.AuthMethods, d.AuthSigningAlgs, d.Token)
	if err != nil {
		return err
	}
	if p.x.parURL, err = b.choosePAR(d.PAR, d.RequirePAR); err != nil {
		return err
	}
	p.x.auth, p.x.claimsParam = auth, d.ClaimsParam
	p.x.tokenClient = b.tokenClient(auth, d.Token)
	p.oauth.Endpoint.AuthStyle = auth.authStyle()
	if auth.method == authPrivateKeyJWT {
		p.oauth.ClientSecret = ""
	}
	b.reportLacks(p, d.Backchannel)
	return nil
}

// reportLacks logs, once at discovery, which of revocation, RP-initiated
// logout, back-channel logout, userinfo and RFC 9207's iss parameter the
// provider lacks, and what bff does instead.
func (b *BFF) reportLacks(p *provider, backchannel bool) {
	var lacks []any
	if p.revocationURL == "" {
		lacks = append(lacks, "revocation_endpoint", "none: at sign-out the refresh token is not revoked; it stays valid at the provider until it expires")
	}
	switch {
	case b.cfg.ProviderLogout == ProviderLogoutSkip, b.cfg.ProviderLogout == ProviderLogoutCognito:
	case p.endSessionURL == "":
		lacks = append(lacks, "end_session_endpoint", "none: sign-out ends the session here only; the user stays signed in at the provider (the next sign-in may need no password)")
	}
	if !backchannel {
		lacks = append(lacks, "backchannel_logout_supported", "false: a sign-out at the provider does not end sessions here; they end at their next failed refresh, idle timeout or MaxLifetime")
	}
	if p.userinfoURL == "" && !b.cfg.DisableUserinfo {
		lacks = append(lacks, "userinfo_endpoint", "none: the user's claims are the ID token's only")
	}
	if !p.issParamRequired {
		lacks = append(lacks, "authorization_response_iss_parameter_supported", "false: no RFC 9207 mix-up defence beyond the ID token's iss; an iss parameter is still checked when present")
	}
	if len(lacks) > 0 {
		b.log.Warn("bff: the provider lacks features; what bff does instead", append([]any{"issuer", b.cfg.Issuer}, lacks...)...)
	}
}

func (b *BFF) discoverOnce() error {
	ctx, cancel := b.discoveryContext()
	defer cancel()
	op, tenants, err := b.discoverProvider(ctx)
	if err != nil {
		return err
	}
	var d struct {
		JWKSURI            string   `json:"jwks_uri"`
		Userinfo           string   `json:"userinfo_endpoint"`
		Revocation         string   `json:"revocation_endpoint"`
		EndSession         string   `json:"end_session_endpoint"`
		PKCEMethods        []string `json:"code_challenge_methods_supported"`
		IssParam           bool     `json:"authorization_response_iss_parameter_supported"`
		SigningAlgs        []string `json:"id_token_signing_alg_values_supported"`
		AuthorizationEndpt string   `json:"authorization_endpoint"`
		TokenEndpt         string   `json:"token_endpoint"`
	}
	if err := op.Claims(&d); err != nil {
		return fmt.Errorf("discovery document: %w", err)
	}
	if !slices.Contains(d.PKCEMethods, "S256") && !b.cfg.InsecureAllowNoPKCE {
		return configErr("the provider does not advertise PKCE S256 (code_challenge_methods_supported); set Options.InsecureAllowNoPKCE to accept it")
	}
	if err := b.cfg.checkEndpoints(d.AuthorizationEndpt, d.TokenEndpt, d.JWKSURI, d.Userinfo, d.Revocation, d.EndSession); err != nil {
		return fmt.Errorf("discovery document: %w", err)
	}
	keys := keyset.New(keyset.Config{URL: d.JWKSURI, Client: b.client, Logger: b.cfg.Logger,
		MinRefetchInterval: b.cfg.keysRefetchInterval, Now: b.cfg.Now})
	algs := idTokenAlgs(d.SigningAlgs)
	ep := op.Endpoint()
	p := &provider{
		oauth: oauth2.Config{
			ClientID: b.cfg.ClientID, ClientSecret: b.cfg.ClientSecret, Endpoint: ep,
			RedirectURL: b.cfg.redirectURI, Scopes: b.cfg.Scopes,
		},
		verifier: oidc.NewVerifier(b.cfg.Issuer, keys, &oidc.Config{
			ClientID: b.cfg.ClientID, SupportedSigningAlgs: algs, Now: b.cfg.Now,
			SkipIssuerCheck: tenants != nil, // verifyIDToken checks iss against the template
		}),
		logoutVerifier: oidc.NewVerifier(b.cfg.Issuer, keys, &oidc.Config{
			ClientID: b.cfg.ClientID, SupportedSigningAlgs: algs, SkipExpiryCheck: true,
		}),
		userinfoURL:      d.Userinfo,
		revocationURL:    d.Revocation,
		endSessionURL:    d.EndSession,
		issParamRequired: d.IssParam,
		tenants:          tenants,
		keys:             keys,
	}
	if b.cfg.DisableUserinfo {
		p.userinfoURL = ""
	}
	if err := b.discoverExtras(op, p); err != nil {
		return err
	}
	b.prov.Store(p)
	b.log.Info("bff: provider discovered", "issuer", b.cfg.Issuer)
	return nil
}

// discoveryContext bounds one discovery attempt (10 s, or until Close) and
// makes it use the bounded client.
func (b *BFF) discoveryContext() (context.Context, context.CancelFunc) {
	base, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-base.Done():
		}
	}()
	return b.clientContext(base), cancel
}

// idTokenAlgs are the ID token signing algorithms to accept: the
// discovery document's asymmetric ones (never none, never HS*), or RS256.
func idTokenAlgs(advertised []string) []string {
	algs := []string{}
	for _, a := range advertised {
		if a != "none" && !strings.HasPrefix(a, "HS") {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		algs = []string{oidc.RS256}
	}
	return algs
}
