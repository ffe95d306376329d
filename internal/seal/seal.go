// Package seal is the one place where bff encrypts: the login-transaction
// cookie, session records at rest, and the keyed hashes that name store keys.
//
// A Sealer holds one or more 32-byte master keys. The first key seals; every
// key opens, so a new key can be put first and the old ones kept until
// everything sealed with them has expired (rotation). Each master key is
// expanded with HKDF-SHA256 into one AES-256-GCM key per purpose, so a value
// sealed for one purpose never opens for another. The associated data binds a
// sealed value to its context (for a session record: its store key), so values
// cannot be swapped between records.
//
// All crypto objects are built once in New; Seal and Open allocate only their
// output.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeySize is the size of a master key in bytes.
const KeySize = 32

const (
	version   = 1
	idLen     = 4 // key identifier: first bytes of SHA-256 of the purpose key
	nonceLen  = 12
	overhead  = 1 + idLen + nonceLen + 16
	hmacBytes = 20 // truncated HMAC-SHA256 used for store-key names (160 bits)
)

// ErrOpen is returned for any value that does not open: wrong key, tampered,
// truncated or garbage. It never says which, and never contains the value.
var ErrOpen = errors.New("seal: value does not open")

// Purpose separates the keys used for different kinds of data.
type Purpose string

// The purposes bff uses.
const (
	PurposeSession     Purpose = "bff session record v1"
	PurposeTransaction Purpose = "bff login transaction v1"
	PurposeIndex       Purpose = "bff index record v1"
)

type aeadKey struct {
	id   [idLen]byte
	aead cipher.AEAD
}

// Sealer seals and opens values. It is safe for concurrent use.
type Sealer struct {
	keys    map[Purpose][]aeadKey // first key seals
	macKeys [][]byte              // one per master key, for Names
}

// New builds a Sealer from master keys (each exactly KeySize bytes, the first
// one sealing) for the given purposes.
func New(masterKeys [][]byte, purposes ...Purpose) (*Sealer, error) {
	if len(masterKeys) == 0 {
		return nil, errors.New("seal: no key")
	}
	s := &Sealer{keys: make(map[Purpose][]aeadKey, len(purposes))}
	for i, mk := range masterKeys {
		if len(mk) != KeySize {
			return nil, fmt.Errorf("seal: key %d is %d bytes, want %d", i, len(mk), KeySize)
		}
		for _, p := range purposes {
			k, err := hkdf.Key(sha256.New, mk, nil, string(p), 32)
			if err != nil {
				return nil, fmt.Errorf("seal: derive key: %w", err)
			}
			block, err := aes.NewCipher(k)
			if err != nil {
				return nil, fmt.Errorf("seal: %w", err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				return nil, fmt.Errorf("seal: %w", err)
			}
			sum := sha256.Sum256(k)
			var ak aeadKey
			copy(ak.id[:], sum[:idLen])
			ak.aead = aead
			s.keys[p] = append(s.keys[p], ak)
		}
	}
	for _, mk := range masterKeys {
		macKey, err := hkdf.Key(sha256.New, mk, nil, "bff store key names v1", 32)
		if err != nil {
			return nil, fmt.Errorf("seal: derive key: %w", err)
		}
		s.macKeys = append(s.macKeys, macKey)
	}
	return s, nil
}

// Seal encrypts and authenticates plaintext for purpose p, bound to ad, and
// appends the result to dst.
func (s *Sealer) Seal(dst []byte, p Purpose, plaintext, ad []byte) []byte {
	k := s.keys[p][0]
	dst = append(dst, version)
	dst = append(dst, k.id[:]...)
	nonceAt := len(dst)
	dst = append(dst, make([]byte, nonceLen)...)
	rand.Read(dst[nonceAt:]) // never returns an error (crypto/rand)
	return k.aead.Seal(dst, dst[nonceAt:nonceAt+nonceLen], plaintext, ad)
}

// Open authenticates and decrypts a value sealed for purpose p and bound to
// ad, appending the plaintext to dst. Any failure is ErrOpen.
func (s *Sealer) Open(dst []byte, p Purpose, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < overhead || sealed[0] != version {
		return nil, ErrOpen
	}
	id := sealed[1 : 1+idLen]
	nonce := sealed[1+idLen : 1+idLen+nonceLen]
	ct := sealed[1+idLen+nonceLen:]
	for _, k := range s.keys[p] {
		if !hmac.Equal(k.id[:], id) {
			continue
		}
		out, err := k.aead.Open(dst, nonce, ct, ad)
		if err != nil {
			return nil, ErrOpen
		}
		return out, nil
	}
	return nil, ErrOpen
}

// Revision identifies one Seal call's output by its header (the key ID and
// the random nonce): two seals never share it, so a conditional write can
// name the value it read by its revision alone. It aliases sealed.
func Revision(sealed []byte) []byte { return sealed[:min(len(sealed), 1+idLen+nonceLen)] }

// Names returns keyed, one-way names for value (a subject, an IdP session
// ID, a replay-cache entry), one per master key, the first key's first:
// records are written under the first name and looked up under all of them,
// so rotation keeps them reachable. Without a key, a name cannot be linked to
// its value.
func (s *Sealer) Names(kind, value string) []string {
	out := make([]string, len(s.macKeys))
	for i, k := range s.macKeys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(kind))
		m.Write([]byte{0})
		m.Write([]byte(value))
		out[i] = kind + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:hmacBytes])
	}
	return out
}

// Name is the first of Names: the name a record is written under.
func (s *Sealer) Name(kind, value string) string { return s.Names(kind, value)[0] }

// IDName names a record by a high-entropy random identifier (a session ID).
// It needs no key, since such an identifier cannot be guessed from its hash,
// and so it survives key rotation and costs one SHA-256.
func IDName(kind, id string) string {
	sum := sha256.Sum256([]byte(id))
	return kind + ":" + base64.RawURLEncoding.EncodeToString(sum[:hmacBytes])
}
