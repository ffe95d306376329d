package redirect

import "strings"

// Attacks are open-redirect payloads that Path must reject. They are the
// shared table of the tests of every layer that takes a return path (this
// package, /auth/login, the callback) and the seeds of their fuzz targets.
var Attacks = []string{
	"", "app", "https://evil.example", "http:/evil.example", "//evil.example", "///evil.example",
	"/\\evil.example", "\\\\evil.example", "/\t/evil.example", "/\n/evil.example", "/\r/evil.example",
	"/ /evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x",
	"/%2F%2Fevil.example", "/%2f/evil.example", "/%5Cevil.example", "/%5c%5cevil.example",
	"/%09/evil.example", "/%00", "/\x00", "/\x7f", "//@evil.example",
	"https:evil.example", "/" + strings.Repeat("a", MaxLen), "/\x8c",
	// Dot segments that a browser resolves into "//host" (also encoded).
	"/.//evil.example", "/%2e//evil.example", "/%2E//evil.example", "/x/..//evil.example",
	"/x/%2e%2e//evil.example", "/x/.%2E//evil.example", "/x/%2e.//evil.example", "/..//evil.example",
	"/a/b/../..//evil.example", "/././/evil.example?x=1", "/x/..//evil.example#y", "/x/../%2e//evil.example",
}
