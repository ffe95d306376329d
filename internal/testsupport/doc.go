// Package testsupport holds the helpers that the tests of every module of
// the repository share: a thread-safe log buffer, one polling wait, a free
// local address, a logger writing to the test's log, and an HTTP browser (a
// cookie-keeping client that shows every redirect). Nested modules (e2e,
// examples, telemetrytest, interop) import it as
// github.com/gobff/bff/internal/testsupport, which Go allows because their
// import paths are under the root module's.
//
// It imports only the standard library, so it adds nothing to the root
// module's go.mod. Headless Chromium (chromedp, which must not enter the
// root module's go.mod) is driven by internal/chromium, its own module.
package testsupport
