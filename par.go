package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// PARMode says when sign-ins use Pushed Authorization Requests (RFC 9126,
// Options.PAR).
type PARMode int

const (
	// PARAuto pushes when the discovery document advertises
	// pushed_authorization_request_endpoint.
	PARAuto PARMode = iota
	// PARNever never pushes. A provider that requires it
	// (require_pushed_authorization_requests) does not fit.
	PARNever
	// PARRequired always pushes. A provider without the endpoint does not
	// fit.
	PARRequired
)

// choosePAR returns the PAR endpoint to use ("" for none) per Options.PAR.
func (b *BFF) choosePAR(endpoint string, required bool) (string, error) {
	switch {
	case b.cfg.PAR == PARNever && required:
		return "", configErr("the provider requires pushed authorization requests (require_pushed_authorization_requests) and Options.PAR is PARNever")
	case b.cfg.PAR == PARNever:
		return "", nil
	case endpoint == "" && (required || b.cfg.PAR == PARRequired):
		return "", configErr("Options.PAR is PARRequired (or the provider requires it) and the discovery document has no pushed_authorization_request_endpoint")
	}
	if endpoint != "" {
		if err := b.cfg.checkEndpoint("pushed_authorization_request_endpoint", endpoint); err != nil {
			return "", fmt.Errorf("discovery document: %w", err)
		}
	}
	return endpoint, nil
}

// authorizationRedirect is where /login sends the browser: the
// authorization endpoint with every parameter of tx's request, or, with
// PAR, with only client_id and the request_uri the provider gave for them.
// The browser then sees no parameter at all (no login_hint, no claims),
// and the provider gets them from the authenticated client.
func (b *BFF) authorizationRedirect(ctx context.Context, prov *provider, tx *txn, browser url.Values) (string, error) {
	v := b.authorizationParams(prov, tx, b.signInParams(prov, browser, tx))
	if prov.x.parURL == "" {
		return withQuery(prov.oauth.Endpoint.AuthURL, v), nil
	}
	uri, err := b.push(ctx, prov, v)
	if err != nil {
		return "", err
	}
	return withQuery(prov.oauth.Endpoint.AuthURL, url.Values{"client_id": {b.cfg.ClientID}, "request_uri": {uri}}), nil
}

// maxRequestURI bounds the request_uri a provider may give.
const maxRequestURI = 2048

// push sends an authorization request's parameters to the PAR endpoint,
// with the client's authentication, and returns its request_uri.
func (b *BFF) push(ctx context.Context, prov *provider, v url.Values) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RefreshTimeout)
	defer cancel()
	authorization, err := b.credentials(prov, v)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, prov.x.parURL, strings.NewReader(v.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return "", errUnavailable("The identity provider", fmt.Errorf("pushed authorization request: %w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", errUnavailable("The identity provider", fmt.Errorf("pushed authorization request: %w", err))
	}
	var out struct {
		RequestURI string `json:"request_uri"`
		Error      string `json:"error"`
	}
	jsonErr := json.Unmarshal(body, &out)
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return "", errUnavailable("The identity provider", fmt.Errorf("pushed authorization request: status %d", resp.StatusCode))
	case resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK:
		code := "unknown_error"
		if oauthErrors[out.Error] || out.Error == "invalid_client" {
			code = out.Error
		}
		return "", errLogin(http.StatusBadRequest, "The identity provider refused the sign-in request ("+code+").",
			fmt.Errorf("pushed authorization request: status %d, error %q", resp.StatusCode, code))
	case jsonErr != nil || out.RequestURI == "" || len(out.RequestURI) > maxRequestURI:
		return "", errUnavailable("The identity provider", errors.New("pushed authorization request: the answer has no usable request_uri"))
	}
	return out.RequestURI, nil
}
