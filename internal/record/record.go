// Package record is the binary layout of a session record at rest (before
// sealing). It is a flat, length-prefixed encoding: decoding is one pass
// with bounds checks, no reflection, and garbage always yields an error.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the layout version; the first byte of every encoding.
const Version = 1

// MaxField bounds every field. It matches the bound on every response bff
// reads from the provider (1 MiB), so no single token or claim set the
// provider sends is too large; Check refuses a record beyond it.
const MaxField = 1 << 20

// ErrDecode is returned for any input that is not a valid record.
var ErrDecode = errors.New("record: malformed session record")

// Session is everything bff keeps about one session. Times are Unix
// nanoseconds; 0 means unknown / never.
type Session struct {
	Rev           uint64 // incremented by every write, for tests and logs
	Created       int64
	LastSeen      int64
	Expires       int64 // absolute end: sign-in + MaxLifetime, or the refresh token's expiry if sooner
	Subject       string
	SID           string // the provider's session ID (sid claim), for back-channel logout
	Claims        []byte // JSON object of the user's claims
	AccessToken   string
	TokenType     string
	AccessIssued  int64
	AccessExpiry  int64
	RefreshToken  string
	IDToken       string
	IDTokenExpiry int64
	Name, Email   string // copies of the "name" and "email" claims, so that a read needs no JSON parsing
}

// Check reports a field longer than MaxField: such a record would not
// decode, so it must not be stored.
func (s *Session) Check() error {
	fields := [...]struct {
		name string
		n    int
	}{{"claims", len(s.Claims)}, {"ID token", len(s.IDToken)}, {"access token", len(s.AccessToken)},
		{"refresh token", len(s.RefreshToken)}, {"subject", len(s.Subject)}, {"sid", len(s.SID)},
		{"token type", len(s.TokenType)}, {"name", len(s.Name)}, {"email", len(s.Email)}}
	for _, f := range fields {
		if f.n > MaxField {
			return fmt.Errorf("record: the %s is %d bytes, more than %d", f.name, f.n, MaxField)
		}
	}
	return nil
}

// Append encodes s and appends it to dst.
func (s *Session) Append(dst []byte) []byte {
	dst = append(dst, Version)
	for _, v := range [...]int64{int64(s.Rev), s.Created, s.LastSeen, s.Expires, s.AccessIssued, s.AccessExpiry, s.IDTokenExpiry} {
		dst = binary.AppendVarint(dst, v)
	}
	for _, f := range [...]string{s.Subject, s.SID, s.AccessToken, s.TokenType, s.RefreshToken, s.IDToken, s.Name, s.Email} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Claims)))
	return append(dst, s.Claims...)
}

// Decode parses b into s. The strings in s do not alias b.
func (s *Session) Decode(b []byte) error {
	if len(b) == 0 || b[0] != Version {
		return ErrDecode
	}
	b = b[1:]
	var ints [7]int64
	for i := range ints {
		v, n := binary.Varint(b)
		if n <= 0 {
			return ErrDecode
		}
		ints[i], b = v, b[n:]
	}
	// The string fields are sliced from one string that copies the region
	// holding them: one allocation for all of them.
	var off [9][2]int
	pos := 0
	for i := range off {
		l, n := binary.Uvarint(b[pos:])
		if n <= 0 || l > MaxField || l > uint64(len(b)-pos-n) {
			return ErrDecode
		}
		off[i] = [2]int{pos + n, pos + n + int(l)}
		pos += n + int(l)
	}
	if pos != len(b) {
		return ErrDecode
	}
	region := string(b[:off[7][1]])
	var out [8]string
	for i := range out {
		out[i] = region[off[i][0]:off[i][1]]
	}
	*s = Session{
		Rev: uint64(ints[0]), Created: ints[1], LastSeen: ints[2], Expires: ints[3],
		AccessIssued: ints[4], AccessExpiry: ints[5], IDTokenExpiry: ints[6],
		Subject: out[0], SID: out[1], AccessToken: out[2], TokenType: out[3], RefreshToken: out[4], IDToken: out[5],
		Name: out[6], Email: out[7],
		Claims: append([]byte(nil), b[off[8][0]:off[8][1]]...),
	}
	return nil
}
