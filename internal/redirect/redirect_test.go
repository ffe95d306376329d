package redirect

import (
	"net/url"
	"strings"
	"testing"
)

func TestPathRejectsAttacks(t *testing.T) {
	for _, in := range Attacks {
		if got, err := Path(in); err == nil {
			t.Errorf("Path(%q) = %q, want error", in, got)
		}
	}
}

func TestPathAccepts(t *testing.T) {
	for _, in := range []string{"/", "/app", "/app/x?tab=2", "/a#frag", "/a%20b", "/@/evil.example/../", "/?next=//evil.example"} {
		got, err := Path(in)
		if err != nil || got != in {
			t.Errorf("Path(%q) = %q, %v; want it unchanged", in, got, err)
		}
	}
}

// FuzzPath checks the property: whatever Path accepts, a browser resolving it
// against the app's origin stays on that origin.
func FuzzPath(f *testing.F) {
	for _, s := range Attacks {
		f.Add(s)
	}
	f.Add("/app?x=1#y")
	base, _ := url.Parse("https://app.example/start")
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Path(s)
		if err != nil {
			return
		}
		if out != s {
			t.Fatalf("Path changed %q to %q", s, out)
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
