package bff

import (
	"fmt"
	"net/http"
	"net/url"
)

// silentErrors are the provider's answers to prompt=none that mean "the
// user must interact" (OIDC Core §3.1.2.6).
var silentErrors = map[string]bool{
	"login_required": true, "consent_required": true, "interaction_required": true, "account_selection_required": true,
}

// providerError answers a callback that carries the provider's error.
// After a silent sign-in (prompt=none) from this browser (tx, which
// callbackTx found and checked), an answer of silentErrors sends the
// browser back to returnTo with error=<code>: the app learns that the user
// is not signed in at the provider, no session changes, and the browser
// never sees an error page. Anything else is the JSON error of a failed
// sign-in.
func (b *BFF) providerError(w http.ResponseWriter, r *http.Request, tx txn, txErr error, q url.Values) {
	code := "unknown_error"
	if e := q.Get("error"); oauthErrors[e] {
		code = e
	}
	noteOutcome(w, "provider_"+code)
	if silentErrors[code] && txErr == nil && tx.Prompt == "none" {
		if prov := b.provider(); prov != nil && b.checkIssParam(prov, q) == nil {
			b.log.InfoContext(r.Context(), "bff: silent sign-in: the user must sign in at the provider", "error", code)
			http.Redirect(w, r, withError(tx.ReturnTo, code), http.StatusSeeOther)
			return
		}
	}
	// A navigation goes back to the sign-in's returnTo, or "/" (failTo),
	// with the provider's code, or login_failed for one RFC 6749 does not
	// define.
	dest, errCode := tx.ReturnTo, code
	if txErr != nil {
		dest = "/"
	}
	if !oauthErrors[code] {
		errCode = codeLoginFailed
	}
	b.failTo(w, r, loginError(http.StatusBadRequest, errCode, "The identity provider did not sign you in ("+code+").",
		fmt.Errorf("provider returned error %q", code)), dest)
}
