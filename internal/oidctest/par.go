package oidctest

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// parTTL is the lifetime of a pushed request's request_uri.
const parTTL = 60 * time.Second

// requestURIPrefix starts every request_uri (RFC 9126 §2.2).
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// handlePAR implements RFC 9126 Pushed Authorization Requests: the client,
// authenticated as at the token endpoint, posts the authorization request's
// parameters and gets a single-use request_uri to send the browser with.
func (p *Provider) handlePAR(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.PAR && !p.cfg.RequirePAR {
		http.NotFound(w, r)
		return
	}
	if !p.clientPOST(w, r) {
		return
	}
	p.parRequests.Add(1)
	form := r.PostForm
	switch {
	case form.Has("request_uri"):
		oauthError(w, http.StatusBadRequest, "invalid_request", "request_uri must not be pushed")
		return
	case form.Get("client_id") != "" && form.Get("client_id") != p.cfg.ClientID:
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id does not match the authenticated client")
		return
	case !p.redirectAllowed(form.Get("redirect_uri")):
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not registered")
		return
	}
	pa, maxAgeOK := p.pendingFrom(form)
	if code, desc := p.checkAuthorization(form, pa, p.misbehavior(), maxAgeOK); code != "" {
		oauthError(w, http.StatusBadRequest, code, desc)
		return
	}
	params := url.Values{}
	for k, v := range form {
		if !strings.HasPrefix(k, "client_assertion") && k != "client_secret" {
			params[k] = v
		}
	}
	params.Set("client_id", p.cfg.ClientID)
	uri := requestURIPrefix + randomString()
	now := p.now()
	p.mu.Lock()
	p.pushed.put(uri, params, now.Add(parTTL), now)
	p.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int64(parTTL / time.Second)})
}

// authorizationParams returns the parameters of an authorization request:
// the query, or, with a request_uri, what the client pushed (single use;
// the query's client_id must match). It renders an error page and returns
// false for an unknown request_uri, or a request that was not pushed when
// pushing is required.
func (p *Provider) authorizationParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q := r.URL.Query()
	uri := q.Get("request_uri")
	if uri == "" {
		if p.cfg.RequirePAR {
			p.renderMessage(w, http.StatusBadRequest, "Pushed authorization request required",
				"This provider accepts only pushed authorization requests (RFC 9126).")
			return nil, false
		}
		return q, true
	}
	now := p.now()
	p.mu.Lock()
	params, ok := p.pushed.get(uri, now)
	p.pushed.delete(uri)
	p.mu.Unlock()
	if !ok || q.Get("client_id") != params.Get("client_id") {
		p.renderMessage(w, http.StatusBadRequest, "Invalid request_uri",
			"The request_uri is unknown, expired, already used, or of another client.")
		return nil, false
	}
	return params, true
}

// recordAuthorization keeps the parameters of the latest authorization
// request, for LastAuthorizationRequest.
func (p *Provider) recordAuthorization(q url.Values) {
	c := url.Values{}
	for k, v := range q {
		c[k] = append([]string(nil), v...)
	}
	p.mu.Lock()
	p.lastAuthz = c
	p.mu.Unlock()
}

// LastAuthorizationRequest returns the parameters of the latest
// authorization request that named this client, pushed or not.
func (p *Provider) LastAuthorizationRequest() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := url.Values{}
	for k, v := range p.lastAuthz {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// PushedRequests counts authenticated requests to /par.
func (p *Provider) PushedRequests() int { return int(p.parRequests.Load()) }
