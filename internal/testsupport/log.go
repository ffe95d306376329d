package testsupport

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// LogBuffer collects what a logger, a process or a browser writes, for tests
// of what was written: Write and String may be called from any goroutine.
// The zero value is ready to use and keeps everything.
type LogBuffer struct {
	// Limit, when above zero, is how many bytes the buffer keeps; later
	// writes are dropped (a noisy child process must not fill the memory).
	Limit int

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p (or drops it past Limit); it never fails.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Limit > 0 && l.b.Len() >= l.Limit {
		return len(p), nil
	}
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger returns a text logger that writes into l at every level, debug
// included.
func (l *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// JSONLogger is Logger with JSON records, for Records and Find.
func (l *LogBuffer) JSONLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Records decodes what a JSONLogger wrote; a line that is not JSON fails t.
func (l *LogBuffer) Records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// Find returns the first record with the message msg, failing t without one.
func (l *LogBuffer) Find(t testing.TB, msg string) map[string]any {
	t.Helper()
	for _, r := range l.Records(t) {
		if r["msg"] == msg {
			return r
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, l.String())
	return nil
}

// TestWriter writes each Write as one line of the test's log (t.Log), so
// that output shows with -v or beside a failure.
type TestWriter struct{ T testing.TB }

func (w TestWriter) Write(p []byte) (int, error) {
	w.T.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
