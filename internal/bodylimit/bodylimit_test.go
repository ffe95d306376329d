package bodylimit

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	var size int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", size))
	}))
	defer srv.Close()
	c := Client(srv.Client(), 1000)
	for _, tc := range []struct {
		size int
		ok   bool
	}{{0, true}, {999, true}, {1000, true}, {1001, false}, {1 << 20, false}} {
		size = tc.size
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.ok && (err != nil || len(b) != tc.size) {
			t.Errorf("%d bytes: read %d, %v", tc.size, len(b), err)
		}
		if !tc.ok && (!errors.Is(err, ErrTooLarge) || len(b) > 1000) {
			t.Errorf("%d bytes: read %d, %v; want ErrTooLarge after at most 1000", tc.size, len(b), err)
		}
	}
}
