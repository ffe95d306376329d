// Package redirect validates the post-login return path (returnTo), the one
// piece of user input bff ever puts in a Location header.
package redirect

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxLen bounds a return path, in bytes: it travels in a cookie.
const MaxLen = 512

var (
	// ErrInvalid is returned for anything that is not a plain same-origin path.
	ErrInvalid = errors.New("returnTo must be a same-origin path such as /app")
	// ErrTooLong is returned for a path longer than MaxLen bytes.
	ErrTooLong = errors.New("returnTo is longer than 512 bytes")
)

// Path validates a return path and returns it in the form to put in a
// Location header. It accepts only an absolute path on the same origin,
// optionally with a query and fragment: "/", "/app?tab=2#x". It rejects empty
// input, anything longer than MaxLen (ErrTooLong), absolute and
// scheme-relative URLs ("https://x", "//x", "/\x"), any scheme
// ("javascript:"), backslashes, control characters and white space anywhere
// (browsers drop tabs and newlines, turning "/\t/x" into "//x"),
// percent-encoded variants of the above in the path ("/%2F%2Fx", "/%5Cx"),
// and invalid UTF-8 (which would not survive the sealed login-transaction
// cookie unchanged).
//
// Dot segments ("." and "..", also as "%2e") are resolved the way a browser
// resolves them, before the checks above run on the result, and the
// resolved path is returned: "/x/..//evil.example" is "//evil.example" to a
// browser, and is rejected.
func Path(s string) (string, error) {
	if len(s) > MaxLen {
		return "", ErrTooLong
	}
	if err := check(s); err != nil {
		return "", err
	}
	out := resolveDots(s)
	if out != s {
		if err := check(out); err != nil {
			return "", err
		}
	}
	return out, nil
}

// check is Path without the dot-segment resolution.
func check(s string) error {
	if s == "" || s[0] != '/' || !utf8.ValidString(s) {
		return ErrInvalid
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return ErrInvalid
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c == 0x7f || c == '\\' {
			return ErrInvalid
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ErrInvalid
	}
	// The decoded path must not turn into something a browser or a
	// downstream router reads as another origin.
	p := u.Path
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\x00") {
		return ErrInvalid
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return ErrInvalid
		}
	}
	return nil
}

// resolveDots removes the dot segments of the path part of s (before '?'
// or '#') as the WHATWG URL parser does for a special URL: "." and "%2e"
// (any case) are single dots; "..", ".%2e", "%2e." and "%2e%2e" double
// dots; a final dot segment leaves an empty segment ("/a/.." is "/").
func resolveDots(s string) string {
	end := len(s)
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		end = i
	}
	path := s[:end]
	if !strings.Contains(path, ".") && !strings.Contains(path, "%2") {
		return s
	}
	segs := strings.Split(path[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch dots(seg) {
		case 2:
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			fallthrough
		case 1:
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	return "/" + strings.Join(out, "/") + s[end:]
}

// dots returns 1 for a single-dot segment, 2 for a double-dot one, else 0.
func dots(seg string) int {
	switch strings.ToLower(seg) {
	case ".", "%2e":
		return 1
	case "..", ".%2e", "%2e.", "%2e%2e":
		return 2
	}
	return 0
}
