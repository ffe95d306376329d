package seal

import (
	"bytes"
	"errors"
	"testing"
)

var (
	k1 = bytes.Repeat([]byte{1}, KeySize)
	k2 = bytes.Repeat([]byte{2}, KeySize)
)

func mustNew(t *testing.T, keys ...[]byte) *Sealer {
	t.Helper()
	s, err := New(keys, PurposeSession, PurposeTransaction)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	s := mustNew(t, k1)
	msg := []byte("refresh-token-value")
	sealed := s.Seal(nil, PurposeSession, msg, []byte("s:key"))
	if bytes.Contains(sealed, msg) {
		t.Fatal("sealed value contains the plaintext")
	}
	if len(sealed) != len(msg)+overhead {
		t.Fatalf("overhead %d, want %d", len(sealed)-len(msg), overhead)
	}
	got, err := s.Open(nil, PurposeSession, sealed, []byte("s:key"))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if again := s.Seal(nil, PurposeSession, msg, []byte("s:key")); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
}

// Every way a value can be wrong gives ErrOpen, and nothing else.
func TestOpenRejects(t *testing.T) {
	s := mustNew(t, k1)
	sealed := s.Seal(nil, PurposeSession, []byte("value"), []byte("s:a"))
	flip := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 1; return b }
	for name, tc := range map[string]struct {
		sealer  *Sealer
		purpose Purpose
		v, ad   []byte
	}{
		"other store key (moved record)": {s, PurposeSession, sealed, []byte("s:b")},
		"other purpose":                  {s, PurposeTransaction, sealed, []byte("s:a")},
		"other key":                      {mustNew(t, k2), PurposeSession, sealed, []byte("s:a")},
		"version byte":                   {s, PurposeSession, flip(0), []byte("s:a")},
		"key id":                         {s, PurposeSession, flip(1), []byte("s:a")},
		"nonce":                          {s, PurposeSession, flip(6), []byte("s:a")},
		"ciphertext":                     {s, PurposeSession, flip(len(sealed) - 20), []byte("s:a")},
		"tag":                            {s, PurposeSession, flip(len(sealed) - 1), []byte("s:a")},
		"truncated":                      {s, PurposeSession, sealed[:len(sealed)-1], []byte("s:a")},
		"too short":                      {s, PurposeSession, sealed[:overhead-1], []byte("s:a")},
		"empty":                          {s, PurposeSession, nil, []byte("s:a")},
	} {
		if out, err := tc.sealer.Open(nil, tc.purpose, tc.v, tc.ad); !errors.Is(err, ErrOpen) || out != nil {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", name, out, err)
		}
	}
}

// Rotation: a new key put first seals; values sealed with the old key still
// open while it is listed, and no longer once it is removed.
func TestRotation(t *testing.T) {
	old := mustNew(t, k1)
	v := old.Seal(nil, PurposeSession, []byte("value"), nil)
	rotated := mustNew(t, k2, k1)
	if got, err := rotated.Open(nil, PurposeSession, v, nil); err != nil || string(got) != "value" {
		t.Fatalf("old value after rotation: %q, %v", got, err)
	}
	nv := rotated.Seal(nil, PurposeSession, []byte("new"), nil)
	if _, err := old.Open(nil, PurposeSession, nv, nil); err == nil {
		t.Fatal("the old key alone opened a value sealed with the new key")
	}
	if _, err := mustNew(t, k2).Open(nil, PurposeSession, v, nil); !errors.Is(err, ErrOpen) {
		t.Fatal("a removed key still opens")
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	if _, err := New(nil, PurposeSession); err == nil {
		t.Error("no key accepted")
	}
	if _, err := New([][]byte{k1[:16]}, PurposeSession); err == nil {
		t.Error("16-byte key accepted")
	}
}

func TestNames(t *testing.T) {
	s := mustNew(t, k1)
	n := s.Name("sub", "alice")
	if n != s.Name("sub", "alice") || n == s.Name("sub", "bob") || n == s.Name("sid", "alice") {
		t.Fatal("names are not a function of kind and value")
	}
	if bytes.Contains([]byte(n), []byte("alice")) {
		t.Fatal("name reveals its value")
	}
	if n == mustNew(t, k2).Name("sub", "alice") {
		t.Fatal("the name does not depend on the key")
	}
	names := mustNew(t, k2, k1).Names("sub", "alice")
	if len(names) != 2 || names[1] != n {
		t.Fatalf("after rotation the old key's name is not among Names: %v", names)
	}
	if IDName("s", "ID1") == IDName("s", "ID2") || IDName("s", "ID1") != IDName("s", "ID1") {
		t.Fatal("IDName is not a function of its input")
	}
}

func BenchmarkOpen(b *testing.B) {
	s, _ := New([][]byte{k1}, PurposeSession)
	v := s.Seal(nil, PurposeSession, bytes.Repeat([]byte("x"), 2048), []byte("s:a"))
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(buf[:0], PurposeSession, v, []byte("s:a")); err != nil {
			b.Fatal(err)
		}
	}
}
