package bff

import (
	"net/http"
	"strings"
)

// hostRedirectedParam marks a /login request that bff has already sent to
// BaseURL's host: if it still arrives on another host, a reverse proxy
// rewrites Host, and sending it again would loop.
const hostRedirectedParam = "hostRedirected"

// redirectToBaseHost sends a /login request that arrived on a host other
// than BaseURL's (the app opened at http://127.0.0.1:8080 with BaseURL
// http://localhost:8080) to the same path on BaseURL, and reports whether
// it did. Otherwise the login cookie would be set for the other host and
// the provider's redirect back to BaseURL would find none ("No sign-in is
// in progress in this browser").
func (b *BFF) redirectToBaseHost(w http.ResponseWriter, r *http.Request) bool {
	if r.Host == "" || sameHost(r.Host, b.cfg.base.Host, b.cfg.base.Scheme) {
		return false
	}
	q := r.URL.Query()
	if q.Has(hostRedirectedParam) {
		b.hostRewriteOnce.Do(func() {
			b.log.Warn("bff: /login requests arrive with a Host other than BaseURL's, even after a redirect to BaseURL: a reverse proxy rewrites Host; each sign-in takes one extra redirect (pass Host through, e.g. nginx proxy_set_header Host $host)",
				"host", r.Host, "base_url", b.cfg.base.String())
		})
		return false
	}
	q.Set(hostRedirectedParam, "1")
	http.Redirect(w, r, b.cfg.base.String()+b.cfg.Prefix+"/login?"+q.Encode(), http.StatusSeeOther)
	return true
}

// sameHost compares a request's Host with BaseURL's host, ignoring case
// and the scheme's default port.
func sameHost(host, base, scheme string) bool {
	norm := func(h string) string {
		h = strings.ToLower(h)
		if scheme == "https" {
			return strings.TrimSuffix(h, ":443")
		}
		return strings.TrimSuffix(h, ":80")
	}
	return norm(host) == norm(base)
}

// sameOrigin is http.CrossOriginProtection's check, with BaseURL's own
// origin trusted: behind a reverse proxy that rewrites Host, a request
// without Sec-Fetch-Site (older browsers, scripts) has its Origin compared
// with the rewritten Host and would be refused although it comes from the
// app itself. A request whose browser says it is cross-site or same-site
// (Sec-Fetch-Site) stays refused, whatever its Origin.
func (b *BFF) sameOrigin(r *http.Request) bool {
	if b.cop.Check(r) == nil {
		return true
	}
	return r.Header.Get("Sec-Fetch-Site") == "" && r.Header.Get("Origin") == b.cfg.base.String()
}

// maxLoggedHeader bounds a request header copied into a log line.
const maxLoggedHeader = 256

// originAttrs are the facts of a cross-origin refusal, for its log line:
// what the browser said (Origin, Sec-Fetch-Site) and which Host reached
// bff, so that a reverse proxy that rewrites Host shows up.
func originAttrs(r *http.Request) []any {
	clip := func(s string) string { return s[:min(len(s), maxLoggedHeader)] }
	return []any{"origin", clip(r.Header.Get("Origin")), "host", clip(r.Host),
		"sec_fetch_site", clip(r.Header.Get("Sec-Fetch-Site"))}
}
