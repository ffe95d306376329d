package bff

import (
	"net/http"
	"strings"
)

// isNavigation reports whether r is a browser navigation (the user follows
// a link, submits a form, types an address) rather than a script's fetch.
// Browsers that send Fetch Metadata say so in Sec-Fetch-Mode, and then only
// "navigate" counts: a fetch that accepts text/html (htmx) is no
// navigation. Without Fetch Metadata (older browsers, other clients), a GET
// or HEAD that accepts text/html counts.
func isNavigation(r *http.Request) bool {
	switch mode := r.Header["Sec-Fetch-Mode"]; {
	case len(mode) > 0:
		return mode[0] == "navigate"
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return false
	}
	return acceptsHTML(r.Header["Accept"])
}

// acceptsHTML reports whether an Accept header names text/html (or
// text/*) with a quality above zero. "*/*" alone does not count: every
// fetch sends it.
func acceptsHTML(accept []string) bool {
	for _, line := range accept {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ",")
			mediaType, params, _ := strings.Cut(part, ";")
			mediaType = strings.TrimSpace(mediaType)
			if !strings.EqualFold(mediaType, "text/html") && !strings.EqualFold(mediaType, "text/*") {
				continue
			}
			if !zeroQuality(params) {
				return true
			}
		}
	}
	return false
}

// zeroQuality reports whether media-type parameters hold q=0 (RFC 9110
// §12.4.2: "not acceptable").
func zeroQuality(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			v = strings.TrimSpace(v)
			return strings.Trim(v, "0.") == "" && v != ""
		}
	}
	return false
}
