package record

import (
	"encoding/base64"
	"encoding/binary"
	"math/bits"
	"strings"
)

// Tokens are most of a record: a JWT is three base64url segments, and most
// opaque tokens are one. A packed token holds the segments' bytes instead of
// their text, a quarter smaller, and unpacks to exactly the text it was
// given; any token that is not canonical base64url is kept as text.
//
// A packed token field is empty, or one form byte and then the text
// (formText) or the segments, each length-prefixed (formSegments).
const (
	formText     = 0
	formSegments = 1
)

var b64 = base64.RawURLEncoding.Strict()

// isToken reports whether string field i (in Append's order) is a token.
func isToken(i int) bool { return i == 2 || i == 4 || i == 5 }

func appendToken(dst []byte, tok string) []byte {
	if tok == "" {
		return append(dst, 0)
	}
	if packable(tok) {
		mark := len(dst)
		if out, ok := appendSegments(dst, tok); ok {
			return out
		}
		dst = dst[:mark]
	}
	dst = binary.AppendUvarint(dst, uint64(len(tok)+1))
	dst = append(dst, formText)
	return append(dst, tok...)
}

// packable reports whether tok is dot-separated base64url segments of
// lengths base64 can have; Strict decoding then checks the unused bits.
func packable(tok string) bool {
	seg := 0
	for i := 0; i <= len(tok); i++ {
		if i == len(tok) || tok[i] == '.' {
			if seg%4 == 1 {
				return false
			}
			seg = 0
			continue
		}
		c := tok[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
		seg++
	}
	return true
}

func appendSegments(dst []byte, tok string) ([]byte, bool) {
	size := 1
	for seg := range strings.SplitSeq(tok, ".") {
		n := b64.DecodedLen(len(seg))
		size += uvarintLen(n) + n
	}
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, formSegments)
	for seg := range strings.SplitSeq(tok, ".") {
		dst = binary.AppendUvarint(dst, uint64(b64.DecodedLen(len(seg))))
		var err error
		if dst, err = b64.AppendDecode(dst, []byte(seg)); err != nil {
			return dst, false
		}
	}
	return dst, true
}

func uvarintLen(n int) int { return (bits.Len64(uint64(n)|1) + 6) / 7 }

// tokenLen is the length of the text that field f unpacks to.
func tokenLen(f []byte) (int, error) {
	if len(f) == 0 {
		return 0, nil
	}
	if f[0] == formText {
		return len(f) - 1, nil
	}
	if f[0] != formSegments || len(f) == 1 {
		return 0, ErrDecode
	}
	total := -1 // no dot before the first segment
	for b := f[1:]; len(b) > 0; {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return 0, ErrDecode
		}
		total += 1 + b64.EncodedLen(int(l))
		b = b[n+int(l):]
	}
	if total > MaxField {
		return 0, ErrDecode
	}
	return total, nil
}

// writeToken writes the text of field f, which tokenLen accepted. It
// encodes through a stack buffer, in whole 3-byte groups, so that unpacking
// allocates nothing beyond the record's one string.
func writeToken(sb *strings.Builder, f []byte) {
	if len(f) == 0 {
		return
	}
	if f[0] == formText {
		sb.Write(f[1:])
		return
	}
	var buf [1024]byte
	for b, first := f[1:], true; len(b) > 0; first = false {
		l, n := binary.Uvarint(b)
		seg := b[n : n+int(l)]
		b = b[n+int(l):]
		if !first {
			sb.WriteByte('.')
		}
		for len(seg) > 0 {
			chunk := seg[:min(len(seg), 768)]
			seg = seg[len(chunk):]
			b64.Encode(buf[:], chunk)
			sb.Write(buf[:b64.EncodedLen(len(chunk))])
		}
	}
}
