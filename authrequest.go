package bff

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// LoginParam names an authorization-request parameter that /login accepts
// from the browser's query (Options.LoginParams).
type LoginParam string

// The parameters /login may pass on from the browser (OIDC Core §3.1.2.1).
const (
	ParamPrompt    LoginParam = "prompt"     // none, login, consent, select_account
	ParamLoginHint LoginParam = "login_hint" // who is signing in (an email address, a username)
	ParamACRValues LoginParam = "acr_values" // the authentication levels asked for, space-separated
	ParamMaxAge    LoginParam = "max_age"    // seconds since the user last authenticated, at most
	ParamUILocales LoginParam = "ui_locales" // the languages of the provider's pages, space-separated
)

// allLoginParams is the default of Options.LoginParams.
var allLoginParams = []LoginParam{ParamPrompt, ParamLoginHint, ParamACRValues, ParamMaxAge, ParamUILocales}

// allPrompts is the default of Options.LoginPrompts.
var allPrompts = []string{"none", "login", "consent", "select_account"}

// reservedAuthParams are set by bff on every authorization request (or
// would put a client credential into a browser URL, or change how the
// response comes back): Options.AuthParams may not name them.
var reservedAuthParams = []string{"client_id", "redirect_uri", "state", "nonce", "code_challenge",
	"code_challenge_method", "response_type", "response_mode", "scope", "request", "request_uri",
	"client_secret", "client_assertion", "client_assertion_type"}

// Bounds of the browser's sign-in parameters.
const (
	maxLoginHint = 256 // bytes
	maxACRValues = 512 // bytes, all values
	maxACRCount  = 10
	maxUILocales = 128 // bytes, all tags
	maxLocales   = 10
)

var localeTag = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

// validateAuthParams checks Options.AuthParams.
func validateAuthParams(p map[string]string) error {
	for k, v := range p {
		switch {
		case slices.Contains(reservedAuthParams, k):
			return fieldErr("AuthParams", "%q is set by bff itself (or is a credential) and may not be given", k)
		case k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fieldErr("AuthParams", "%q is not a parameter name", k)
		case !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl):
			return fieldErr("AuthParams", "the value of %q holds control characters or invalid UTF-8", k)
		}
	}
	if v, ok := p[string(ParamMaxAge)]; ok {
		if _, err := checkMaxAge(v); err != nil {
			return fieldErr("AuthParams", "max_age: %v", err)
		}
	}
	if v, ok := p[string(ParamACRValues)]; ok {
		if _, err := checkACRValues(v); err != nil {
			return fieldErr("AuthParams", "acr_values: %v", err)
		}
	}
	return nil
}

// validateLoginParams checks Options.LoginParams and LoginPrompts.
func validateLoginParams(c *config) error {
	for _, p := range c.LoginParams {
		if !slices.Contains(allLoginParams, p) {
			return fieldErr("LoginParams", "%q is not one of prompt, login_hint, acr_values, max_age, ui_locales", p)
		}
	}
	for _, p := range c.LoginPrompts {
		if !slices.Contains(allPrompts, p) {
			return fieldErr("LoginPrompts", "%q is not one of none, login, consent, select_account", p)
		}
	}
	switch {
	case c.DisableLoginParams:
		c.LoginParams = nil
	case len(c.LoginParams) == 0:
		c.LoginParams = allLoginParams
	}
	if len(c.LoginPrompts) == 0 {
		c.LoginPrompts = allPrompts
	}
	return nil
}

// loginParams reads the sign-in parameters of a /login request: only those
// in Options.LoginParams, each validated. Anything else in the query is
// ignored; a parameter given twice, or one /login does not accept, is an
// error.
func (b *BFF) loginParams(q url.Values) (url.Values, error) {
	out := url.Values{}
	for _, p := range allLoginParams {
		vs, present := q[string(p)]
		if !present || (len(vs) == 1 && vs[0] == "") {
			continue
		}
		if !slices.Contains(b.cfg.LoginParams, p) {
			return nil, fmt.Errorf("%s is not accepted by this app", p)
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("%s is given more than once", p)
		}
		v, err := b.checkLoginParam(p, vs[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out.Set(string(p), v)
	}
	return out, nil
}

// checkLoginParam validates one sign-in parameter and returns it
// normalized (single spaces between values).
func (b *BFF) checkLoginParam(p LoginParam, v string) (string, error) {
	switch p {
	case ParamPrompt:
		return b.checkPrompt(v)
	case ParamLoginHint:
		if len(v) > maxLoginHint || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return "", fmt.Errorf("must be at most %d bytes of text without control characters", maxLoginHint)
		}
		return v, nil
	case ParamACRValues:
		vs, err := checkACRValues(v)
		return strings.Join(vs, " "), err
	case ParamMaxAge:
		_, err := checkMaxAge(v)
		return v, err
	default: // ParamUILocales
		tags := strings.Fields(v)
		if len(v) > maxUILocales || len(tags) == 0 || len(tags) > maxLocales ||
			slices.ContainsFunc(tags, func(t string) bool { return !localeTag.MatchString(t) }) {
			return "", fmt.Errorf("must be up to %d language tags such as \"de-CH fr\" (%d bytes at most)", maxLocales, maxUILocales)
		}
		return strings.Join(tags, " "), nil
	}
}

func (b *BFF) checkPrompt(v string) (string, error) {
	ps := strings.Fields(v)
	bad := len(ps) == 0 || len(ps) > len(allPrompts) || (slices.Contains(ps, "none") && len(ps) > 1)
	for i, p := range ps {
		bad = bad || !slices.Contains(b.cfg.LoginPrompts, p) || slices.Contains(ps[:i], p)
	}
	if bad {
		return "", fmt.Errorf("must be some of %s, each once (none alone)", strings.Join(b.cfg.LoginPrompts, ", "))
	}
	return strings.Join(ps, " "), nil
}

// checkACRValues splits acr_values. A value is printable ASCII without
// space, quote or backslash, so that it fits a WWW-Authenticate
// quoted-string unchanged (RequireAuthLevel).
func checkACRValues(v string) ([]string, error) {
	vs := strings.Fields(v)
	if len(v) > maxACRValues || len(vs) == 0 || len(vs) > maxACRCount || slices.ContainsFunc(vs, badACR) {
		return nil, fmt.Errorf("must be up to %d space-separated values of printable ASCII without quotes or backslashes (%d bytes at most)", maxACRCount, maxACRValues)
	}
	return vs, nil
}

func badACR(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '"' || r == '\\' })
}

// checkMaxAge parses max_age: decimal seconds, 0 to 2^31-1.
func checkMaxAge(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > math.MaxInt32 || strings.Trim(v, "0123456789") != "" {
		return 0, errors.New("must be a number of seconds from 0 to 2147483647")
	}
	return n, nil
}

// signInParams merges Options.AuthParams with the browser's parameters
// (which win), adds prompt=consent when offline_access is asked for and no
// prompt is named (OIDC Core §11 lets a provider ignore offline_access
// otherwise), and asks for an essential acr (the claims parameter, instead
// of acr_values) when the browser sends acr_values and the provider
// supports it. It records in tx
// what the callback must check.
func (b *BFF) signInParams(prov *provider, browser url.Values, tx *txn) url.Values {
	out := url.Values{}
	for k, v := range b.cfg.AuthParams {
		out.Set(k, v)
	}
	for k, v := range browser {
		out[k] = v
	}
	if !out.Has(string(ParamPrompt)) && !b.cfg.DisableConsentPrompt && slices.Contains(b.cfg.Scopes, "offline_access") {
		out.Set(string(ParamPrompt), "consent")
	}
	tx.Prompt = out.Get(string(ParamPrompt))
	if v := out.Get(string(ParamMaxAge)); v != "" {
		n, _ := checkMaxAge(v) // validated
		tx.MaxAge = &n
	}
	// Only the browser's acr_values (a step-up) are checked at the
	// callback: a static one is a hint, and refusing every sign-in that
	// the provider answers at another level would lock everybody out.
	if v := browser.Get(string(ParamACRValues)); v != "" {
		tx.ACR, _ = checkACRValues(v) // validated
		if prov.x.claimsParam && !out.Has("claims") {
			claims, _ := json.Marshal(map[string]any{"id_token": map[string]any{
				"acr": map[string]any{"essential": true, "values": tx.ACR}}})
			out.Set("claims", string(claims))
			// Not also as acr_values, a voluntary request for the same
			// claim that some providers let win (panva's oidc-provider).
			out.Del(string(ParamACRValues))
			tx.ACREssential = true
		}
	}
	return out
}

// authorizationParams are every parameter of the authorization request
// for tx: the protocol's (code flow, PKCE S256, state, nonce) and extra.
func (b *BFF) authorizationParams(prov *provider, tx *txn, extra url.Values) url.Values {
	v := url.Values{}
	for k, vs := range extra {
		v[k] = vs
	}
	v.Set("response_type", "code")
	v.Set("client_id", b.cfg.ClientID)
	v.Set("redirect_uri", b.cfg.redirectURI)
	v.Set("scope", strings.Join(b.cfg.Scopes, " "))
	v.Set("state", tx.State)
	v.Set("nonce", tx.Nonce)
	v.Set("code_challenge", oauth2.S256ChallengeFromVerifier(tx.Verifier))
	v.Set("code_challenge_method", "S256")
	return v
}

// withQuery appends a query to an endpoint URL that may already have one.
func withQuery(endpoint string, q url.Values) string {
	sep := "?"
	if strings.Contains(endpoint, "?") {
		sep = "&"
	}
	return endpoint + sep + q.Encode()
}
