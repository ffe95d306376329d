package bff

import "net/http"

// isUpgrade reports whether r asks to switch protocols, as a WebSocket
// handshake does. Such a request is a GET but not a safe one: what follows
// the switch is whatever the page sends.
func isUpgrade(r *http.Request) bool { return len(r.Header["Upgrade"]) > 0 }

// checkUpgrade runs the cross-origin check on an upgrade request, which
// http.CrossOriginProtection skips for a GET. Options.CSRFHeader is not
// required: a browser's WebSocket cannot send custom headers, and it
// always sends Origin.
func (b *BFF) checkUpgrade(r *http.Request) error {
	unsafe := new(http.Request)
	*unsafe = *r
	unsafe.Method = http.MethodPost
	if err := b.cop.Check(unsafe); err != nil {
		return errCSRF
	}
	return nil
}
