package record

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
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

// jwt is a token shaped like a real one: three base64url segments.
func jwt(payload int) string {
	seg := func(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xa7}, n)) }
	return seg(30) + "." + seg(payload) + "." + seg(64)
}

func TestTokensArePackedAndUnpackExactly(t *testing.T) {
	for name, tok := range map[string]string{
		"JWT":                        jwt(500),
		"opaque base64url":           "2L9ds-2NHPyd73EiBnugcI-I4E8_2L9ds-2NHPyd73EiBnugcI-I4E8",
		"padded":                     "YWJj.ZA==",
		"unused bits set":            "AB.CD",
		"one-char segment":           "a.b.c",
		"not base64url":              "at~/+:",
		"line break":                 "ab\ncd",
		"empty segments":             "..",
		"JWE (five segments)":        jwt(100) + "." + jwt(20),
		"segment longer than buffer": jwt(5000),
	} {
		in := sample()
		in.AccessToken, in.RefreshToken, in.IDToken = tok, tok+"x", ""
		var out Session
		if err := out.Decode(in.Append(nil)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out.AccessToken != in.AccessToken || out.RefreshToken != in.RefreshToken || out.IDToken != "" || out.Subject != in.Subject || out.Email != in.Email {
			t.Errorf("%s: got %q %q %q", name, out.AccessToken, out.RefreshToken, out.IDToken)
		}
	}
	base, in := sample(), sample()
	in.IDToken = jwt(500)
	text, packed := len(in.IDToken), len(in.Append(nil))-len(base.Append(nil))+len(base.IDToken)
	if packed > text*77/100 {
		t.Errorf("a %d-byte ID token takes %d bytes packed, want at most 77%%", text, packed)
	}
}

// A record written before tokens were packed still decodes.
func TestVersion1Decodes(t *testing.T) {
	in := sample()
	in.IDToken = jwt(100)
	v1 := []byte{version1}
	for _, v := range [...]int64{int64(in.Rev), in.Created, in.LastSeen, in.Expires, in.AccessIssued, in.AccessExpiry, in.IDTokenExpiry} {
		v1 = binary.AppendVarint(v1, v)
	}
	for _, f := range [...]string{in.Subject, in.SID, in.AccessToken, in.TokenType, in.RefreshToken, in.IDToken, in.Name, in.Email, string(in.Claims)} {
		v1 = append(binary.AppendUvarint(v1, uint64(len(f))), f...)
	}
	var out Session
	if err := out.Decode(v1); err != nil {
		t.Fatal(err)
	}
	if out.IDToken != in.IDToken || out.Email != in.Email || !bytes.Equal(out.Claims, in.Claims) {
		t.Fatalf("got %+v", out)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	good := (&Session{Subject: "x"}).Append(nil)
	for name, b := range map[string][]byte{
		"empty": nil, "wrong version": {9}, "truncated": good[:len(good)-1],
		"trailing": append(append([]byte(nil), good...), 0), "huge length": {Version, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"unknown token form": {Version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0},
		"no segments":        {Version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0},
		"segment overrun":    {Version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		var s Session
		if err := s.Decode(b); err == nil {
			t.Errorf("%s: decoded %+v", name, s)
		}
	}
}

// FuzzToken: every token unpacks to exactly the text it was given.
func FuzzToken(f *testing.F) {
	for _, tok := range []string{"", "a", "AB.CD", jwt(20), "x.y.", "YWJj.ZA=="} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if len(tok) > MaxField {
			return
		}
		in := Session{AccessToken: tok}
		var out Session
		if err := out.Decode(in.Append(nil)); err != nil || out.AccessToken != tok {
			t.Fatalf("%q unpacked to %q (%v)", tok, out.AccessToken, err)
		}
	})
}

// FuzzDecode: decoding arbitrary bytes never panics, and whatever decodes
// re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	s := sample()
	f.Add(s.Append(nil))
	f.Add([]byte{})
	f.Add([]byte{Version})
	s.IDToken = jwt(40)
	f.Add(s.Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Session
		if err := s.Decode(b); err != nil {
			return
		}
		if again := s.Append(nil); !bytes.Equal(again, b) {
			// Varints have one canonical form when produced by Append; a
			// non-canonical input may decode, but must re-decode identically.
			var s2 Session
			if err := s2.Decode(again); err != nil || s2.Subject != s.Subject || s2.RefreshToken != s.RefreshToken || s2.IDToken != s.IDToken {
				t.Fatalf("re-encoding differs: %v", err)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	s := sample()
	s.AccessToken, s.IDToken = jwt(850), jwt(600)
	enc := s.Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		var out Session
		if err := out.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
