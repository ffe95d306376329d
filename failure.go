package bff

import (
	"context"
	"net/http"
)

// Error codes of sign-in failures that are bff's own. A provider's error
// (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6) keeps its own code,
// such as "access_denied".
const (
	codeLoginFailed  = "login_failed"  // a check of the sign-in response failed
	codeLoginExpired = "login_expired" // the sign-in took too long, or is no longer in progress in this browser
	codeLoginRefused = "login_refused" // Options.OnLogin refused the user
)

// failureCodes are the codes a failed sign-in or sign-out can bring back
// in ?error=: RequireLogin knows them (toLogin).
var failureCodes = map[string]bool{
	codeLoginFailed: true, codeLoginExpired: true, codeLoginRefused: true,
	"temporarily_unavailable": true, "invalid_request": true, "cross_origin": true, "server_error": true,
}

// isFailureCode reports whether ?error= holds a code of a failed sign-in
// or sign-out.
func isFailureCode(code string) bool { return failureCodes[code] || oauthErrors[code] }

// failureKey holds, in the context of a failed sign-in or sign-out that a
// browser navigated to, the page to send it to (see failTo).
var failureKey = &ctxKey{"failure destination"}

// failTo is fail for the sign-in and sign-out routes. A browser navigation
// there has nowhere to show a JSON error, so the default error handler
// sends it (303) to a page of the app: Options.ErrorPath, or dest (the
// attempt's returnTo, or where a sign-out goes), with ?error=<code>. Other
// requests get the JSON error. A custom ErrorHandler gets every failure
// as before.
func (b *BFF) failTo(w http.ResponseWriter, r *http.Request, err error, dest string) {
	if isNavigation(r) {
		if b.cfg.ErrorPath != "" {
			dest = b.cfg.ErrorPath
		}
		r = r.WithContext(context.WithValue(r.Context(), failureKey, dest))
	}
	b.fail(w, r, err)
}

// redirectFailure is the default error handler's answer to a navigation
// that failTo marked: it reports whether it answered.
func redirectFailure(w http.ResponseWriter, r *http.Request, e *Error) bool {
	dest, ok := r.Context().Value(failureKey).(string)
	if !ok {
		return false
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Type")
	// dest is a same-origin path checked by redirect.Path (by New for
	// ErrorPath); the code is bff's or a provider's code from oauthErrors:
	// nothing a request chose.
	http.Redirect(w, r, withError(dest, e.Code), http.StatusSeeOther)
	return true
}

// oauthErrors are the error codes of RFC 6749 §4.1.2.1 and OIDC Core
// §3.1.2.6 (and its errata's unmet_authentication_requirements); only
// these are repeated to the client.
var oauthErrors = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true, "unsupported_response_type": true,
	"invalid_scope": true, "server_error": true, "temporarily_unavailable": true, "interaction_required": true,
	"login_required": true, "account_selection_required": true, "consent_required": true,
	"invalid_request_uri": true, "invalid_request_object": true, "request_not_supported": true,
	"request_uri_not_supported": true, "registration_not_supported": true, "unmet_authentication_requirements": true,
}
