package testsupport

import (
	"net"
	"testing"
	"time"
)

// Poll calls cond until it returns true or d has passed, and reports whether
// it did. It sleeps between calls, first a few milliseconds, then longer
// (up to 50 ms), so that a quick condition is seen at once and a slow one
// costs little CPU. It is for code that handles the timeout itself (a
// start-up that retries, say); tests call WaitUntil.
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := 2 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
	return true
}

// WaitUntil polls cond (see Poll) until it holds, and fails the test after d
// with "timed out after d waiting for what". d is a deadline for a wait,
// never a timed assertion: give it room.
func WaitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// FreeAddr returns "127.0.0.1:port" with a port that was free a moment
// ago: for a server the test starts by address (a process, or code that
// listens by itself). Another process may take it in between; a test that
// starts processes retries on "address already in use".
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
