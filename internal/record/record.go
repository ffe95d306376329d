// Package record is the binary layout of a session record at rest (before
// sealing). It is a flat, length-prefixed encoding: decoding is one pass
// with bounds checks, no reflection, and garbage always yields an error.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Version is the layout version; the first byte of every encoding. Version
// 2 packs the tokens (token.go); version 1 held them as text.
const (
	Version  = 2
	version1 = 1
)

// MaxField bounds every field. It matches the bound on every response bff
// reads from the provider (1 MiB), so no single token or claim set the
// provider sends is too large; Check refuses a record beyond it.
const MaxField = 1 << 20

// ErrDecode is returned for any input that is not a valid record.
var ErrDecode = errors.New("record: malformed session record")

// Session is everything bff keeps about one session. Times are Unix
// nanoseconds; 0 means unknown / never.
//
// The times come first, together: every request reads them, and there
// they share the CPU's cache lines.
type Session struct {
	Rev           uint64 // incremented by every write, for tests and logs
	Created       int64
	LastSeen      int64
	Expires       int64 // absolute end: sign-in + MaxLifetime, or the refresh token's expiry if sooner
	AccessIssued  int64
	AccessExpiry  int64
	IDTokenExpiry int64
	Subject       string
	SID           string // the provider's session ID (sid claim), for back-channel logout
	Claims        []byte // JSON object of the user's claims
	AccessToken   string
	TokenType     string
	RefreshToken  string
	IDToken       string
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
	for i, f := range [...]string{s.Subject, s.SID, s.AccessToken, s.TokenType, s.RefreshToken, s.IDToken, s.Name, s.Email} {
		if isToken(i) {
			dst = appendToken(dst, f)
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Claims)))
	return append(dst, s.Claims...)
}

// Decode parses b into s. The strings in s do not alias b. Records of
// version 1 (tokens as text) still decode.
func (s *Session) Decode(b []byte) error {
	if len(b) == 0 || (b[0] != Version && b[0] != version1) {
		return ErrDecode
	}
	packed := b[0] == Version
	b = b[1:]
	var ints [7]int64
	for i := range ints {
		v, n := binary.Varint(b)
		if n <= 0 {
			return ErrDecode
		}
		ints[i], b = v, b[n:]
	}
	var fields [9][]byte
	for i := range fields {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > MaxField || l > uint64(len(b)-n) {
			return ErrDecode
		}
		fields[i], b = b[n:n+int(l)], b[n+int(l):]
	}
	if len(b) != 0 {
		return ErrDecode
	}
	out, err := decodeStrings(fields[:8], packed)
	if err != nil {
		return err
	}
	*s = Session{
		Rev: uint64(ints[0]), Created: ints[1], LastSeen: ints[2], Expires: ints[3],
		AccessIssued: ints[4], AccessExpiry: ints[5], IDTokenExpiry: ints[6],
		Subject: out[0], SID: out[1], AccessToken: out[2], TokenType: out[3], RefreshToken: out[4], IDToken: out[5],
		Name: out[6], Email: out[7],
		Claims: append([]byte(nil), fields[8]...),
	}
	return nil
}

// decodeStrings turns the string fields into strings that all share one
// allocation, unpacking the tokens of a packed record.
func decodeStrings(fields [][]byte, packed bool) ([8]string, error) {
	var out [8]string
	var ends [8]int
	total := 0
	for i, f := range fields {
		n := len(f)
		if packed && isToken(i) {
			var err error
			if n, err = tokenLen(f); err != nil {
				return out, err
			}
		}
		total += n
		ends[i] = total
	}
	var sb strings.Builder
	sb.Grow(total)
	for i, f := range fields {
		if packed && isToken(i) {
			writeToken(&sb, f)
		} else {
			sb.Write(f)
		}
	}
	all, start := sb.String(), 0
	for i := range out {
		out[i], start = all[start:ends[i]], ends[i]
	}
	return out, nil
}
