package exampleapp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// DevIdP is the embedded development OpenID Provider: oidctest with its
// HTML sign-in page, on its own listener (so on its own origin).
type DevIdP struct {
	Provider *oidctest.Provider
	URL      string // the issuer, like http://127.0.0.1:8081
	srv      *http.Server
	done     chan struct{}
}

// StartDevIdP starts the development IdP on c.DevIdPAddr and points c's
// issuer and client credentials at it. BFF_CLIENT_ID and BFF_CLIENT_SECRET,
// when set, become the dev IdP's client; with BFF_CLIENT_KEY the client
// authenticates with private_key_jwt, its keys fetched from the app's
// /auth/jwks. The dev IdP offers PAR (RFC 9126) and knows two acr values,
// oidctest.ACRBasic and oidctest.ACRStrong (asked for, the sign-in page
// stands in for a second factor).
func (c *Config) StartDevIdP(log *slog.Logger) (*DevIdP, error) {
	if c.Issuer != "" {
		return nil, errors.New("exampleapp: an issuer is configured; the dev IdP is not needed")
	}
	host, _, err := net.SplitHostPort(c.DevIdPAddr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.DevIdPAddr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	issuer := "http://" + net.JoinHostPort(host, port)

	op := oidctest.New(oidctest.Config{
		Issuer:         issuer,
		ClientID:       c.ClientID,
		ClientSecret:   c.ClientSecret,
		RedirectURIs:   []string{c.BaseURL + "/auth/callback", c.BaseURL + "/auth/logout/callback"},
		AccessTokenTTL: c.DevAccessTokenTTL,
		Interactive:    true,
		PAR:            true,
	})
	if c.ClientKey != nil {
		op.SetClientJWKSURI(c.BaseURL + "/auth/jwks")
	}
	d := &DevIdP{
		Provider: op,
		URL:      issuer,
		srv:      &http.Server{Handler: op, ReadHeaderTimeout: 10 * time.Second},
		done:     make(chan struct{}),
	}
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("dev IdP stopped", "err", err)
		}
	}()
	c.Issuer, c.ClientID = issuer, op.ClientID()
	if c.ClientKey == nil {
		c.ClientSecret = op.ClientSecret()
	}
	u := oidctest.DefaultUser
	log.Warn("BFF_ISSUER is not set: using the embedded development identity provider, for local development only",
		"issuer", issuer, "username", u.Username, "password", u.Password, "access_token_ttl", c.DevAccessTokenTTL)
	return d, nil
}

// Close stops the dev IdP.
func (d *DevIdP) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.srv.Shutdown(ctx)
	<-d.done
	return err
}
