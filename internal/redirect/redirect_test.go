package redirect

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/gobff/bff/internal/testsupport"
)

// attacks are open-redirect payloads that Path must reject: the table of
// testdata/attacks.txt, a Go-quoted string a line, which the tests of every
// layer that takes a return path share.
func attacks(t testing.TB) []string { return testsupport.QuotedLines(t, "testdata/attacks.txt") }

func TestPathRejectsAttacks(t *testing.T) {
	for _, in := range attacks(t) {
		if got, err := Path(in); err == nil {
			t.Errorf("Path(%q) = %q, want error", in, got)
		}
	}
}

func TestPathAccepts(t *testing.T) {
	for _, in := range []string{"/", "/app", "/app/x?tab=2", "/a#frag", "/a%20b", "/?next=//evil.example",
		"/a/..%2F%2Fevil.example", "/.a/..b/...", "/x?/../..//evil.example#/..//y"} {
		got, err := Path(in)
		if err != nil || got != in {
			t.Errorf("Path(%q) = %q, %v; want it unchanged", in, got, err)
		}
	}
}

// Dot segments are resolved as a browser resolves them (WHATWG URL: "%2e"
// is a dot too), and the clean path is what Path returns.
func TestPathResolvesDotSegments(t *testing.T) {
	for in, want := range map[string]string{
		"/@/evil.example/../":       "/@/",
		"/a/./b":                    "/a/b",
		"/a/../b":                   "/b",
		"/a/%2e%2E/b?x=/../y#/../z": "/b?x=/../y#/../z",
		"/a/..":                     "/",
		"/a/.":                      "/a/",
		"/..":                       "/",
		"/.":                        "/",
		"/a/%2e/b/.%2e/c":           "/a/c",
	} {
		if got, err := Path(in); err != nil || got != want {
			t.Errorf("Path(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestPathTooLong(t *testing.T) {
	if _, err := Path("/" + strings.Repeat("a", MaxLen-1)); err != nil {
		t.Errorf("a path of MaxLen bytes: %v", err)
	}
	if _, err := Path("/" + strings.Repeat("a", MaxLen)); !errors.Is(err, ErrTooLong) {
		t.Errorf("a path of MaxLen+1 bytes: %v, want ErrTooLong", err)
	}
}

// FuzzPath checks the property: whatever Path accepts, a browser resolving it
// against the app's origin stays on that origin.
func FuzzPath(f *testing.F) {
	for _, s := range attacks(f) {
		f.Add(s)
	}
	f.Add("/app?x=1#y")
	base, _ := url.Parse("https://app.example/start")
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Path(s)
		if err != nil {
			return
		}
		if again, err := Path(out); err != nil || again != out {
			t.Fatalf("Path(%q) = %q, but Path(%q) = %q, %v", s, out, out, again, err)
		}
		if out != s && !hasDotSegment(s) {
			t.Fatalf("Path changed %q (no dot segment) to %q", s, out)
		}
		if hasDotSegment(out) {
			t.Fatalf("accepted %q keeps a dot segment", out)
		}
		u, err := base.Parse(out)
		if err != nil {
			t.Fatalf("accepted %q does not parse: %v", out, err)
		}
		if u.Scheme != "https" || u.Host != "app.example" || u.User != nil {
			t.Fatalf("accepted %q leaves the origin: %v", out, u)
		}
		if strings.ContainsAny(out, "\\\t\r\n ") {
			t.Fatalf("accepted %q with characters browsers rewrite", out)
		}
	})
}

// hasDotSegment reports whether the path of s (before '?' or '#') has a
// "." or ".." segment, "%2e" counting as a dot.
func hasDotSegment(s string) bool {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	for _, seg := range strings.Split(s, "/") {
		seg = strings.ReplaceAll(strings.ToLower(seg), "%2e", ".")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
