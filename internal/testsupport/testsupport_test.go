package testsupport

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Writers on many goroutines and a reader: -race sees no race, and nothing
// written is lost.
func TestLogBufferConcurrent(t *testing.T) {
	var l LogBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				l.Logger().Info("line")
				_ = l.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(l.String(), "msg=line"); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
}

// Records decodes each JSON line; Find picks a record by its message.
func TestLogBufferRecords(t *testing.T) {
	var l LogBuffer
	l.JSONLogger().Info("first", "n", 1)
	l.JSONLogger().Warn("second")
	if rs := l.Records(t); len(rs) != 2 || rs[0]["n"] != 1.0 {
		t.Errorf("Records = %v", rs)
	}
	if r := l.Find(t, "second"); r["level"] != "WARN" {
		t.Errorf("Find(second) = %v", r)
	}
}

func TestLogBufferLimit(t *testing.T) {
	l := LogBuffer{Limit: 4}
	for _, s := range []string{"abc", "de", "fg"} {
		if n, err := l.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := l.String(); got != "abcde" {
		t.Errorf("kept %q, want the writes up to the limit, %q", got, "abcde")
	}
}

func TestPoll(t *testing.T) {
	var calls atomic.Int32
	if !Poll(time.Minute, func() bool { return calls.Add(1) == 3 }) || calls.Load() != 3 {
		t.Errorf("Poll returned before the condition held (%d calls)", calls.Load())
	}
	if Poll(10*time.Millisecond, func() bool { return false }) {
		t.Error("Poll reported a condition that never held")
	}
}

// FreeAddr's address can be listened on.
func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q: %v", addr, err)
	}
	ln.Close()
}

func TestQuotedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "table.txt")
	os.WriteFile(path, []byte("# payloads\n\"//evil.example\"\n\n  \"\\x00/\\tx\"  \n"), 0o600)
	got := QuotedLines(t, path)
	if want := []string{"//evil.example", "\x00/\tx"}; !slices.Equal(got, want) {
		t.Fatalf("QuotedLines = %q, want %q", got, want)
	}
}
