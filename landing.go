package bff

import (
	"html"
	"io"
	"net/http"
)

// landingCSP is the landing page's policy: it loads nothing, runs nothing,
// submits nothing and cannot be framed; its refresh still navigates.
const landingCSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// land ends a successful sign-in at returnTo (a path checked by
// redirect.Path).
//
// A browser reaches the callback at the end of a redirect chain that began
// at the provider, another site. A redirect from here to returnTo would
// continue that chain, and browsers send no SameSite=Strict cookie with a
// navigation whose chain was cross-site: the first page after the sign-in
// would arrive signed out. So a navigation gets a small page of this origin
// that navigates to returnTo with a meta refresh: a navigation that this
// origin starts is same-site, and carries the cookie. The page needs no
// script, so its CSP allows none. Other clients get a plain 303.
func (b *BFF) land(w http.ResponseWriter, r *http.Request, returnTo string) {
	if !isNavigation(r) {
		http.Redirect(w, r, returnTo, http.StatusSeeOther)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", landingCSP)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// returnTo starts with "/", so the refresh's URL is never read as
	// quoted; escaping keeps it inside the attribute.
	target := html.EscapeString(returnTo)
	io.WriteString(w, `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0;url=`+target+`">
<title>Signed in</title>
</head>
<body>
<p>Signed in. <a href="`+target+`">Continue</a></p>
</body>
</html>
`)
}
