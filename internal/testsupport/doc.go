// Package testsupport holds the small helpers that the tests of every module
// of the repository share: a thread-safe log buffer, one polling wait, a
// free local address and a logger writing to the test's log. Nested modules
// (e2e, examples, telemetrytest, interop) import it as
// github.com/gobff/bff/internal/testsupport, which Go allows because their
// import paths are under the root module's.
//
// It imports only the standard library, so it adds nothing to the root
// module's go.mod. Browser helpers live elsewhere: the HTTP one in
// examples/internal/exampletest, the Chromium one (chromedp, which must not
// enter the root module's go.mod) in the nested module internal/chromium.
package testsupport
