package bff

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// Sentinel errors. Every error bff hands to Options.ErrorHandler is an
// *Error that wraps one of them; test with errors.Is.
var (
	// ErrUnauthenticated: no valid session (401). The session cookie is
	// missing, malformed, unknown, expired, or was ended.
	ErrUnauthenticated = errors.New("bff: no valid session")

	// ErrUnavailable: the provider or the session store cannot be reached
	// right now (503 with Retry-After), or a bound on open event streams is
	// reached (429). The session, if any, is intact.
	ErrUnavailable = errors.New("bff: temporarily unavailable")

	// ErrCrossOrigin: an unsafe request from another origin, or without the
	// required CSRF header (403). Nothing was changed.
	ErrCrossOrigin = errors.New("bff: cross-origin request refused")

	// ErrLogin: a sign-in failed (400, or 403 when refused by OnLogin):
	// the provider returned an error or a check of the callback failed. No
	// session was created and none was changed.
	ErrLogin = errors.New("bff: sign-in failed")

	// ErrBadRequest: a malformed request to an auth route (400).
	ErrBadRequest = errors.New("bff: bad request")

	// ErrUpstream: the proxied upstream failed (502, or 504 on timeout).
	ErrUpstream = errors.New("bff: upstream failed")

	// ErrInsufficientAuth: the session's authentication is weaker or older
	// than a route requires (401 insufficient_user_authentication, RFC
	// 9470; see RequireAuthLevel and AuthLevelError). The user signs in
	// again at the level the error names.
	ErrInsufficientAuth = errors.New("bff: insufficient user authentication")

	// ErrMisconfigured: the provider's discovery document does not fit
	// Options (another issuer, no PKCE S256, no client authentication
	// method Options can do, PAR required but turned off). Sign-ins answer
	// 500 until it is fixed, at the provider or in Options; the log says
	// why, at Error level.
	ErrMisconfigured = errors.New("bff: the identity provider does not match the configuration")
)

// Error is the error type of every failed request. Status, Code and
// Description are safe to show to the client; Err (the cause) is for logs
// only and is never sent.
type Error struct {
	Status      int    // HTTP status
	Code        string // short machine-readable code, such as "unauthenticated"
	Description string // one sentence for humans; never contains internals
	RetryAfter  int    // seconds, for 503
	Err         error  // the cause; wraps one of the sentinels
}

// Error is for logs: it includes the cause, which is never sent to the
// client.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("bff: %s: %v", e.Code, e.Err)
	}
	return "bff: " + e.Code
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ConfigError reports an invalid Options field from New, or an invalid
// RedisConfig field from RedisConfig.NewPool (Field "RedisConfig.URL").
type ConfigError struct {
	Field  string // the field's name, such as "IdleTimeout"
	Reason string // what is wrong and what to do
}

// Error names the field and says what to do, such as
// "bff: Options.IdleTimeout must not be negative".
func (e *ConfigError) Error() string {
	if strings.Contains(e.Field, ".") {
		return "bff: " + e.Field + " " + e.Reason
	}
	return "bff: Options." + e.Field + " " + e.Reason
}

const (
	unauthCode        = "unauthenticated"
	unauthDescription = "Sign-in required."
)

// newError is how every request error is built: it wraps kind, one of the
// sentinels, with detail, the cause for logs (nil: none). A 503 asks for a
// retry after 5 seconds, a 429 after 30.
func newError(kind error, status int, code, description string, detail error) *Error {
	err := kind
	if detail != nil {
		err = fmt.Errorf("%w: %w", kind, detail)
	}
	e := &Error{Status: status, Code: code, Description: description, Err: err}
	switch status {
	case http.StatusServiceUnavailable:
		e.RetryAfter = 5
	case http.StatusTooManyRequests:
		e.RetryAfter = 30
	}
	return e
}

func errUnauth(cause error) *Error {
	return newError(ErrUnauthenticated, http.StatusUnauthorized, unauthCode, unauthDescription, cause)
}

func errUnavailable(what string, cause error) *Error {
	return newError(ErrUnavailable, http.StatusServiceUnavailable, "temporarily_unavailable",
		what+" is temporarily unavailable; try again shortly.", fmt.Errorf("%s: %w", what, cause))
}

func errLogin(status int, description string, cause error) *Error {
	return loginError(status, codeLoginFailed, description, cause)
}

// loginError is a failed sign-in with its code (see failure.go).
func loginError(status int, code, description string, cause error) *Error {
	return newError(ErrLogin, status, code, description, cause)
}

var errMethod = newError(ErrBadRequest, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed.", nil)

var errCSRF = newError(ErrCrossOrigin, http.StatusForbidden, "cross_origin", "Cross-origin request refused.", nil)

// defaultErrorHandler writes the JSON error body. err is an *Error (fail
// hands every error over as one); only its safe fields are written.
func defaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	e := err.(*Error)
	if redirectFailure(w, r, e) {
		return
	}
	writeJSONError(w, e)
}

type errorJSON struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	ACRValues   string `json:"acr_values,omitempty"` // RequireAuthLevel's
	MaxAge      *int64 `json:"max_age,omitempty"`    // RequireAuthLevel's, in seconds
}

// The bodies of the most frequent errors, encoded once, so that rejecting
// a flood of requests without a session encodes nothing.
var (
	unauthBody = errorBody(unauthCode, unauthDescription)
	csrfBody   = errorBody(errCSRF.Code, errCSRF.Description)
)

// errorBody is what json.Encoder writes for the error.
func errorBody(code, description string) []byte {
	b, _ := json.Marshal(errorJSON{Error: code, Description: description})
	return append(b, '\n')
}

func writeJSONError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	v := make([]string, 3) // one allocation for the three values (Set makes one each)
	v[0], v[1], v[2] = "application/json", "no-store", "nosniff"
	h["Content-Type"], h["Cache-Control"], h["X-Content-Type-Options"] = v[0:1:1], v[1:2:2], v[2:3:3]
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	switch {
	case e.Code == unauthCode && e.Description == unauthDescription:
		w.Write(unauthBody)
	case e.Code == errCSRF.Code && e.Description == errCSRF.Description:
		w.Write(csrfBody)
	default:
		body := errorJSON{Error: e.Code, Description: e.Description}
		if need, ok := e.Err.(*AuthLevelError); ok {
			body.ACRValues = strings.Join(need.ACRValues, " ")
			if need.MaxAge > 0 {
				n := need.maxAgeSeconds()
				body.MaxAge = &n
			}
		}
		json.NewEncoder(w).Encode(body)
	}
}

// scrub keeps an oauth2 error's code but drops the response body it quotes.
func scrub(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("token endpoint: status %d, error %q", status, re.ErrorCode)
	}
	return err
}

func badRequest(description string, cause error) *Error {
	return newError(ErrBadRequest, http.StatusBadRequest, "invalid_request", description, cause)
}
