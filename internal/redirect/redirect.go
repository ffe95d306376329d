// Package redirect validates the post-login return path (returnTo), the one
// piece of user input bff ever puts in a Location header.
package redirect

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxLen bounds a return path.
const MaxLen = 2048

// ErrInvalid is returned for anything that is not a plain same-origin path.
var ErrInvalid = errors.New("returnTo must be a same-origin path such as /app")

// Path validates a return path and returns it in the form to put in a
// Location header. It accepts only an absolute path on the same origin,
// optionally with a query and fragment: "/", "/app?tab=2#x". It rejects empty
// input, anything longer than MaxLen, absolute and scheme-relative URLs
// ("https://x", "//x", "/\x"), any scheme ("javascript:"), backslashes,
// control characters and white space anywhere (browsers drop tabs and
// newlines, turning "/\t/x" into "//x"), and percent-encoded variants of the
// above in the path ("/%2F%2Fx", "/%5Cx"), and invalid UTF-8 (which would
// not survive the sealed login-transaction cookie unchanged).
func Path(s string) (string, error) {
	if s == "" || len(s) > MaxLen || s[0] != '/' || !utf8.ValidString(s) {
		return "", ErrInvalid
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "", ErrInvalid
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c == 0x7f || c == '\\' {
			return "", ErrInvalid
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", ErrInvalid
	}
	// The decoded path must not turn into something a browser or a
	// downstream router reads as another origin.
	p := u.Path
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\x00") {
		return "", ErrInvalid
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return "", ErrInvalid
		}
	}
	return s, nil
}
