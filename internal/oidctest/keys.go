package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signingKey is a private key with its JOSE metadata.
type signingKey struct {
	alg jose.SignatureAlgorithm
	kid string
	key crypto.Signer
}

func (k *signingKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{
		Key:       k.key.Public(),
		KeyID:     k.kid,
		Algorithm: string(k.alg),
		Use:       "sig",
	}
}

// keyRing holds the signing key, optionally the previous one (still
// published), and a key that is never published (for bad signatures).
// Guarded by Provider.mu.
type keyRing struct {
	alg     string
	current *signingKey
	old     []*signingKey
	unknown *signingKey // lazily generated
}

func newKeyRing(alg string) *keyRing {
	return &keyRing{alg: alg, current: generateKey(alg)}
}

func generateKey(alg string) *signingKey {
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		panic(fmt.Sprintf("oidctest: generating key: %v", err))
	}
	return &signingKey{alg: jose.SignatureAlgorithm(alg), kid: "k-" + randomString()[:12], key: key}
}

func (kr *keyRing) unknownKey() *signingKey {
	if kr.unknown == nil {
		kr.unknown = generateKey(kr.alg)
	}
	return kr.unknown
}

// RotateKeys replaces the signing key with a new one; JWKS serves only the
// new key.
func (p *Provider) RotateKeys() {
	k := generateKey(p.cfg.SigningAlg)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys.current = k
	p.keys.old = nil
}

// RotateKeysKeepOld replaces the signing key with a new one; JWKS serves
// both the new and the previous keys.
func (p *Provider) RotateKeysKeepOld() {
	k := generateKey(p.cfg.SigningAlg)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys.old = append(p.keys.old, p.keys.current)
	p.keys.current = k
}

// KeyID returns the kid of the current signing key.
func (p *Provider) KeyID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys.current.kid
}

// PublicKeys returns the published keys (current first).
func (p *Provider) PublicKeys() jose.JSONWebKeySet {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{p.keys.current.publicJWK()}}
	for _, k := range p.keys.old {
		set.Keys = append(set.Keys, k.publicJWK())
	}
	return set
}

// secp256k1JWK is an EC key on secp256k1 (its generator point) without
// "alg", as found in the OpenID conformance suite's JWKS. go-jose cannot
// parse it, so a JSONWebKeySet containing it fails to unmarshal as a whole.
var secp256k1JWK = json.RawMessage(`{"kty":"EC","crv":"secp256k1","kid":"secp256k1-unparseable","use":"sig",` +
	`"x":"` + b64hex("79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798") + `",` +
	`"y":"` + b64hex("483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8") + `"}`)

func b64hex(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// jwksJSON renders the published key set.
func (p *Provider) jwksJSON(unparseable bool) []byte {
	set := p.PublicKeys()
	keys := make([]json.RawMessage, 0, len(set.Keys)+1)
	if unparseable {
		keys = append(keys, secp256k1JWK)
	}
	for _, k := range set.Keys {
		b, err := json.Marshal(k)
		if err != nil {
			panic(err)
		}
		keys = append(keys, b)
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// Certificate is a self-signed certificate of key, valid for a day: a
// client's certificate credential (Config.ClientCertificate) in tests.
func Certificate(key crypto.Signer) (*x509.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "oidctest client"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(23 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
