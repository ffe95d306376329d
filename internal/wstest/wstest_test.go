package wstest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The example handshake of RFC 6455 §1.3.
func TestAccept(t *testing.T) {
	if got := accept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept = %q", got)
	}
}

func TestEcho(t *testing.T) {
	s := &Server{Check: func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer t" {
			return errors.New("no token")
		}
		return nil
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	if c, resp, err := Dial(addr, "/ws", nil); c != nil || err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %v, %v", resp, err)
	}
	c, resp, err := Dial(addr, "/ws", http.Header{"Authorization": {"Bearer t"}})
	if err != nil || c == nil {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	defer c.Close()
	for _, m := range []string{"hi", strings.Repeat("x", 300), strings.Repeat("y", 70000)} {
		if err := c.WriteText(m); err != nil {
			t.Fatal(err)
		}
		if got, err := c.ReadText(); err != nil || got != "echo: "+m {
			t.Fatalf("echo of %d bytes: %d bytes, %v", len(m), len(got), err)
		}
	}
	if n := len(s.Accepted()); n != 1 {
		t.Fatalf("%d handshakes accepted, want 1", n)
	}
}
