package oidctest

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// pkceChallenge matches an S256 code_challenge (base64url of 32 bytes).
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p.authorizeRequest(w, r)
	case http.MethodPost:
		p.authorizeForm(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		p.renderMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
	}
}

// redirectAllowed reports whether uri may be used as redirect_uri or
// post_logout_redirect_uri.
func (p *Provider) redirectAllowed(uri string) bool {
	if len(p.cfg.RedirectURIs) > 0 {
		for _, u := range p.cfg.RedirectURIs {
			if u == uri {
				return true
			}
		}
		return false
	}
	u, err := url.Parse(uri)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

func (p *Provider) authorizeRequest(w http.ResponseWriter, r *http.Request) {
	q, ok := p.authorizationParams(w, r)
	if !ok {
		return
	}
	if q.Get("client_id") != p.cfg.ClientID {
		p.renderMessage(w, http.StatusBadRequest, "Unknown client", "The client_id is not registered.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !p.redirectAllowed(redirectURI) {
		p.renderMessage(w, http.StatusBadRequest, "Invalid redirect_uri", "The redirect_uri is not registered for this client.")
		return
	}
	p.recordAuthorization(q)
	pa, maxAgeOK := p.pendingFrom(q)
	mb := p.misbehavior()
	if code, desc := p.checkAuthorization(q, pa, mb, maxAgeOK); code != "" {
		p.redirectError(w, r, pa, mb, code, desc)
		return
	}
	if slices.Contains(pa.prompt, "none") {
		p.silentLogin(w, r, pa, mb)
		return
	}
	if !p.cfg.Interactive {
		p.mu.Lock()
		u := p.defaultUser
		if pa.loginHint != "" {
			for _, c := range p.users {
				if c.Username == pa.loginHint || c.Subject == pa.loginHint {
					u = c
					break
				}
			}
		}
		p.mu.Unlock()
		p.completeLogin(w, r, pa, u)
		return
	}
	id := randomString()
	now := p.now()
	p.mu.Lock()
	p.pending.put(id, pa, now.Add(pendingTTL), now)
	p.mu.Unlock()
	p.renderLogin(w, http.StatusOK, id, pa.loginHint, "")
}

// pendingFrom reads an authorization request's parameters (maxAgeOK false:
// max_age is malformed).
func (p *Provider) pendingFrom(q url.Values) (pa *pendingAuth, maxAgeOK bool) {
	maxAge, maxAgeOK := parseMaxAge(q.Get("max_age"))
	return &pendingAuth{
		clientID:      p.cfg.ClientID,
		redirectURI:   q.Get("redirect_uri"),
		state:         q.Get("state"),
		nonce:         q.Get("nonce"),
		scope:         q.Get("scope"),
		codeChallenge: q.Get("code_challenge"),
		loginHint:     q.Get("login_hint"),
		prompt:        strings.Fields(q.Get("prompt")),
		maxAge:        maxAge,
		acr:           requestedACR(q),
		accessType:    q.Get("access_type"),
		audience:      q.Get("audience"),
	}, maxAgeOK
}

// checkAuthorization validates an authorization request's parameters and
// returns the error code and description to send back, or "".
func (p *Provider) checkAuthorization(q url.Values, pa *pendingAuth, mb Misbehavior, maxAgeOK bool) (string, string) {
	switch {
	case q.Get("response_type") != "code":
		return "unsupported_response_type", "only response_type=code is supported"
	case !hasScope(pa.scope, "openid"):
		return "invalid_scope", "the openid scope is required"
	case p.rejectsScope(pa.scope):
		return "invalid_scope", "a requested scope is not supported"
	case q.Has("request"):
		return "request_not_supported", "request objects are not supported"
	case pa.codeChallenge == "" && !mb.NoS256:
		return "invalid_request", "code_challenge (PKCE S256) is required"
	case pa.codeChallenge != "" && q.Get("code_challenge_method") != "S256":
		return "invalid_request", "code_challenge_method must be S256"
	case pa.codeChallenge != "" && !pkceChallenge.MatchString(pa.codeChallenge):
		return "invalid_request", "malformed code_challenge"
	case !maxAgeOK:
		return "invalid_request", "max_age must be a non-negative integer"
	case slices.Contains(pa.prompt, "none") && len(pa.prompt) > 1:
		return "invalid_request", "prompt=none cannot be combined with other values"
	}
	for _, v := range pa.prompt {
		if !slices.Contains([]string{"none", "login", "consent", "select_account"}, v) {
			return "invalid_request", "unsupported prompt value"
		}
	}
	return "", ""
}

// authorizeForm handles the sign-in form.
func (p *Provider) authorizeForm(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	id := r.PostForm.Get("auth_request")
	now := p.now()
	p.mu.Lock()
	pa, ok := p.pending.get(id, now)
	p.mu.Unlock()
	if !ok {
		p.renderMessage(w, http.StatusBadRequest, "Sign-in request expired",
			"This sign-in request is unknown or has expired. Go back to the application and start again.")
		return
	}
	if r.PostForm.Get("cancel") != "" {
		p.mu.Lock()
		p.pending.delete(id)
		p.mu.Unlock()
		p.redirectError(w, r, pa, p.misbehavior(), "access_denied", "the user cancelled the sign-in")
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	var (
		user  User
		found bool
	)
	p.mu.Lock()
	for _, u := range p.users {
		if u.Username == username &&
			subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1 {
			user, found = u, true
			break
		}
	}
	if found {
		if _, still := p.pending.get(id, now); !still {
			found = false // consumed concurrently
		}
		p.pending.delete(id)
	}
	p.mu.Unlock()
	if !found {
		p.renderLogin(w, http.StatusOK, id, username, "Invalid username or password.")
		return
	}
	p.completeLogin(w, r, pa, user)
}

// completeLogin starts an OP session for a new authentication of u
// (remembered by the browser's session cookie), issues a code and
// redirects back.
func (p *Provider) completeLogin(w http.ResponseWriter, r *http.Request, pa *pendingAuth, u User) {
	now := p.now()
	sid := randomString()
	mb := p.misbehavior()
	auth := newAuthn(now, pa.acr, mb)
	p.mu.Lock()
	p.sessions.put(sid, &opSession{sub: u.Subject, auth: auth}, now.Add(p.familyTTL(mb)), now)
	p.mu.Unlock()
	p.setSessionCookie(w, sid)
	p.issueCode(w, r, pa, u, sid, auth)
}

// issueCode issues a code for an authentication of u in the OP session sid
// and redirects back.
func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, pa *pendingAuth, u User, sid string, auth authn) {
	now := p.now()
	code := randomString() + randomString()
	mb := p.misbehavior()
	p.mu.Lock()
	p.codes.put(code, &authCode{req: *pa, user: u, sid: sid, auth: auth}, now.Add(codeTTL), now)
	p.mu.Unlock()
	p.redirectBack(w, r, pa, mb, url.Values{"code": {code}})
}

func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, pa *pendingAuth, mb Misbehavior, code, desc string) {
	p.redirectBack(w, r, pa, mb, url.Values{"error": {code}, "error_description": {desc}})
}

// redirectBack redirects to the client with params, state and (per the
// misbehaviour) the RFC 9207 iss parameter.
func (p *Provider) redirectBack(w http.ResponseWriter, r *http.Request, pa *pendingAuth, mb Misbehavior, params url.Values) {
	u, err := url.Parse(pa.redirectURI)
	if err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Invalid redirect_uri", "")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if pa.state != "" {
		q.Set("state", pa.state)
	}
	switch {
	case mb.IssParam == "-":
	case mb.IssParam != "":
		q.Set("iss", mb.IssParam)
	case mb.NoIssParamSupport, p.cfg.Profile.NoIssParam:
	default:
		q.Set("iss", p.tokenIssuer())
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;justify-content:center}
main{background:#fff;margin-top:10vh;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002;min-width:18rem}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin-top:1rem;font-size:.9rem}
input{width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem}
button{margin-top:1.25rem;padding:.5rem 1.2rem}
#error{color:#b00020}
.note{color:#666;font-size:.8rem}
</style>
</head>
<body>
<main>
{{- if .Form}}
<h1>Sign in</h1>
<p class="note">bff development identity provider: for local development only.</p>
{{- if .Error}}
<p id="error" role="alert">{{.Error}}</p>
{{- end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="auth_request" value="{{.ID}}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="{{.Username}}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="signin" type="submit">Sign in</button>
<button id="cancel" type="submit" name="cancel" value="1" formnovalidate>Cancel</button>
</form>
<p class="note">Client: <code>{{.ClientID}}</code></p>
{{- else}}
<h1 id="heading">{{.Heading}}</h1>
<p id="message">{{.Message}}</p>
{{- end}}
</main>
</body>
</html>
`))

type pageData struct {
	Title, Heading, Message        string
	Form                           bool
	Action, ID, Username, ClientID string
	Error                          string
}

// LoginPageTitle is the title of the interactive sign-in page.
const LoginPageTitle = "Sign in — bff development IdP"

func (p *Provider) renderLogin(w http.ResponseWriter, status int, id, username, errMsg string) {
	p.renderPage(w, status, pageData{
		Title: LoginPageTitle, Form: true, Action: p.Issuer() + "/authorize",
		ID: id, Username: username, ClientID: p.cfg.ClientID, Error: errMsg,
	})
}

func (p *Provider) renderMessage(w http.ResponseWriter, status int, heading, msg string) {
	p.renderPage(w, status, pageData{Title: heading + " — bff development IdP", Heading: heading, Message: msg})
}

func (p *Provider) renderPage(w http.ResponseWriter, status int, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	pageTmpl.Execute(w, d)
}
