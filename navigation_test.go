package bff

import (
	"net/http"
	"strings"
	"testing"
)

// What counts as a navigation: Fetch Metadata when the browser sends it,
// else a GET or HEAD that accepts HTML (not */* alone, not q=0).
func TestIsNavigation(t *testing.T) {
	for _, tc := range []struct {
		method  string
		headers []string
		want    bool
	}{
		{"GET", []string{"Sec-Fetch-Mode", "navigate"}, true},
		{"POST", []string{"Sec-Fetch-Mode", "navigate"}, true}, // a form
		{"GET", []string{"Sec-Fetch-Mode", "cors", "Accept", "text/html"}, false},
		{"GET", []string{"Sec-Fetch-Mode", "no-cors", "Accept", "text/html"}, false},
		{"GET", []string{"Sec-Fetch-Mode", "same-origin", "Accept", "text/html"}, false},
		{"GET", []string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}, true},
		{"HEAD", []string{"Accept", "TEXT/HTML"}, true},
		{"GET", []string{"Accept", "application/json, text/* ;q=0.5"}, true},
		{"GET", []string{"Accept", "*/*"}, false},
		{"GET", []string{"Accept", "application/json"}, false},
		{"GET", []string{"Accept", "text/html;q=0"}, false},
		{"GET", []string{"Accept", "text/html; q=0.000"}, false},
		{"GET", []string{"Accept", "text/html;level=1;q=0.1"}, true},
		{"GET", []string{"Accept", "text/htmlx"}, false},
		{"GET", nil, false},
		{"POST", []string{"Accept", "text/html"}, false},
	} {
		r, _ := http.NewRequest(tc.method, "/", nil)
		for i := 0; i+1 < len(tc.headers); i += 2 {
			r.Header.Set(tc.headers[i], tc.headers[i+1])
		}
		if got := isNavigation(r); got != tc.want {
			t.Errorf("%s %q: isNavigation = %v, want %v", tc.method, tc.headers, got, tc.want)
		}
	}
}

// FuzzAcceptsHTML: any Accept header parses without a panic, and is read
// as accepting HTML only when it names text/html or text/*.
func FuzzAcceptsHTML(f *testing.F) {
	for _, s := range []string{"text/html", "text/html;q=0", "*/*", "text/*;q=0.5, application/json", ",,;;=", "text/html;q=", "TEXT/HTML;Q=0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		got := acceptsHTML([]string{accept})
		lower := strings.ToLower(accept)
		if got && !strings.Contains(lower, "text/html") && !strings.Contains(lower, "text/*") {
			t.Errorf("acceptsHTML(%q) = true", accept)
		}
	})
}
