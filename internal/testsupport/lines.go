package testsupport

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// QuotedLines reads a table of test inputs: one Go-quoted string a line,
// blank lines and lines starting with # skipped. Test data kept this way
// can hold any byte (control characters, invalid UTF-8) and still be read
// and reviewed as text.
func QuotedLines(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		out = append(out, s)
	}
	return out
}
