package record

import (
	"bytes"
	"testing"
)

func sample() Session {
	return Session{Rev: 3, Created: 1, LastSeen: -2, Expires: 1 << 60, Subject: "alice", SID: "sid-1",
		Claims: []byte(`{"sub":"alice"}`), AccessToken: "at", TokenType: "Bearer", AccessIssued: 5,
		AccessExpiry: 6, RefreshToken: "rt", IDToken: "a.b.c", IDTokenExpiry: 7, Name: "Alice", Email: "alice@example.com"}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	var out Session
	if err := out.Decode(in.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if out.Subject != in.Subject || out.RefreshToken != in.RefreshToken || out.IDToken != in.IDToken ||
		!bytes.Equal(out.Claims, in.Claims) || out.Name != in.Name || out.Email != in.Email || out.Expires != in.Expires || out.LastSeen != in.LastSeen || out.Rev != in.Rev {
		t.Fatalf("round trip: got %+v want %+v", out, in)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	good := (&Session{Subject: "x"}).Append(nil)
	for name, b := range map[string][]byte{
		"empty": nil, "wrong version": {9}, "truncated": good[:len(good)-1],
		"trailing": append(append([]byte(nil), good...), 0), "huge length": {Version, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		var s Session
		if err := s.Decode(b); err == nil {
			t.Errorf("%s: decoded %+v", name, s)
		}
	}
}

// FuzzDecode: decoding arbitrary bytes never panics, and whatever decodes
// re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	s := sample()
	f.Add(s.Append(nil))
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Session
		if err := s.Decode(b); err != nil {
			return
		}
		if again := s.Append(nil); !bytes.Equal(again, b) {
			// Varints have one canonical form when produced by Append; a
			// non-canonical input may decode, but must re-decode identically.
			var s2 Session
			if err := s2.Decode(again); err != nil || s2.Subject != s.Subject || s2.RefreshToken != s.RefreshToken {
				t.Fatalf("re-encoding differs: %v", err)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	s := sample()
	s.AccessToken = string(bytes.Repeat([]byte("a"), 1200))
	s.IDToken = string(bytes.Repeat([]byte("i"), 900))
	enc := s.Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		var out Session
		if err := out.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
