// Package keyset implements an OpenID Connect key set (the oidc.KeySet interface
// of github.com/coreos/go-oidc/v3) backed by a remote JWKS URL.
//
// Compared with oidc.RemoteKeySet it
//   - parses every JWK of the set on its own and skips the keys it cannot use
//     (for example the secp256k1 key without "alg" found in the OpenID
//     conformance suite's key set), so the usable keys still verify;
//   - restricts the signature algorithms to an asymmetric allow-list;
//   - rate-limits refetches triggered by unknown key IDs or failed
//     verifications: at most one fetch per MinRefetchInterval, concurrent
//     callers share one in-flight fetch, and callers arriving while the
//     refetch is rate-limited fail fast without any network call. This keeps a
//     public endpoint (back-channel logout) that verifies attacker-supplied
//     tokens from hammering the identity provider.
//
// Errors never contain the token text.
package keyset

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/gobff/bff/internal/flight"
)

const (
	// DefaultMinRefetchInterval is the minimum time between two fetches
	// when Config.MinRefetchInterval is zero.
	DefaultMinRefetchInterval = 10 * time.Second
	// fetchTimeout bounds one fetch.
	fetchTimeout = 10 * time.Second
	// MaxJWKSSize is the largest JWKS document accepted.
	MaxJWKSSize = 1 << 20
)

// algs are the signature algorithms accepted: asymmetric signatures only.
// "none" and the HMAC algorithms are never accepted.
var algs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

var (
	// ErrVerification is returned when no key of the set verifies the token's signature.
	ErrVerification = errors.New("keyset: signature verification failed")
	// ErrRateLimited is returned (wrapped together with ErrVerification) when a refetch of the
	// key set would be needed but the previous fetch was less than MinRefetchInterval ago.
	ErrRateLimited = errors.New("keyset: key set refetch rate-limited")
	// ErrMalformed is returned for tokens that cannot be parsed as a compact JWS with an
	// allowed algorithm.
	ErrMalformed = errors.New("keyset: malformed or disallowed jwt")
	// ErrNoUsableKeys is returned when a fetched key set holds no key this package can use.
	ErrNoUsableKeys = errors.New("keyset: key set has no usable keys")
)

// Config configures a Set.
type Config struct {
	// URL is the jwks_uri of the provider. Required.
	URL string
	// Client performs the fetches. Nil means http.DefaultClient.
	Client *http.Client
	// MinRefetchInterval is the minimum time between two fetches (successful or not).
	// Zero means DefaultMinRefetchInterval.
	MinRefetchInterval time.Duration
	// Now is the clock used for rate limiting. Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings about skipped keys and failed fetches. Nil means slog.Default().
	Logger *slog.Logger
}

// Set is a remote JWKS with caching and rate-limited refetches. It is safe for
// concurrent use. Create it with New.
type Set struct {
	url      string
	client   *http.Client
	interval time.Duration
	timeout  time.Duration // of one fetch: fetchTimeout
	now      func() time.Time
	log      *slog.Logger
	flight   flight.Group[[]jose.JSONWebKey]

	mu        sync.Mutex
	keys      []jose.JSONWebKey // usable public keys only; replaced, never mutated
	fetched   bool              // a fetch has been started at least once
	lastFetch time.Time         // start time of the most recent fetch
}

// New returns a Set for cfg. No network call is made until the first verification.
func New(cfg Config) *Set {
	s := &Set{
		url:      cfg.URL,
		client:   cfg.Client,
		interval: cfg.MinRefetchInterval,
		timeout:  fetchTimeout,
		now:      cfg.Now,
		log:      cfg.Logger,
	}
	if s.client == nil {
		s.client = http.DefaultClient
	}
	if s.interval <= 0 {
		s.interval = DefaultMinRefetchInterval
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// URL returns the jwks_uri the set is fetched from.
func (s *Set) URL() string { return s.url }

// VerifySignature verifies the signature of the compact-serialized JWS jwt with the
// key set and returns its payload. It implements oidc.KeySet. It checks the
// signature only: the caller (an oidc.IDTokenVerifier) validates the claims.
func (s *Set) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	if s.url == "" {
		return nil, errors.New("keyset: no JWKS URL configured")
	}
	// JWTs use the compact serialization only (RFC 7519 §1).
	jws, err := jose.ParseSignedCompact(jwt, algs)
	if err != nil {
		// go-jose's parse errors describe the failure without echoing the input;
		// keep only the sentinel to be certain nothing of the token leaks.
		return nil, ErrMalformed
	}
	if len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	hdr := jws.Signatures[0].Protected
	if !slices.Contains(algs, jose.SignatureAlgorithm(hdr.Algorithm)) {
		return nil, ErrMalformed
	}

	s.mu.Lock()
	keys, fetched := s.keys, s.fetched
	s.mu.Unlock()
	if fetched {
		if payload, ok := verify(jws, keys); ok {
			return payload, nil
		}
	}

	// Unknown kid, no key verifying, or nothing fetched yet: refetch (rate-limited).
	cached := keys
	keys, err = s.refetch(ctx)
	if err != nil {
		// Transient: the fetch failed, or it is rate-limited while the key
		// may be one rotated in since the last fetch (its kid is unknown).
		transient := !errors.Is(err, ErrVerification) ||
			errors.Is(err, ErrRateLimited) && (hdr.KeyID == "" || !hasKid(cached, hdr.KeyID))
		if p, ok := ctx.Value(probeKey{}).(*error); ok && transient {
			*p = err
		}
		return nil, err
	}
	if payload, ok := verify(jws, keys); ok {
		return payload, nil
	}
	return nil, ErrVerification
}

// verify tries the candidate keys for the JWS's single signature.
func verify(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) ([]byte, bool) {
	hdr := jws.Signatures[0].Protected
	for i := range keys {
		k := &keys[i]
		if hdr.KeyID != "" && k.KeyID != hdr.KeyID {
			continue
		}
		if !keyFits(k, hdr.Algorithm) {
			continue
		}
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, true
		}
	}
	return nil, false
}

func hasKid(keys []jose.JSONWebKey, kid string) bool {
	for i := range keys {
		if keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

// keyFits reports whether key k may verify a signature made with alg.
func keyFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

type probeKey struct{}

// Probe returns a context that records why the Set could not get the
// provider's keys during a verification under it, and a function returning
// that error (nil when the keys were available, whatever the verdict).
// go-oidc does not wrap a KeySet's errors, so this is how a caller tells
// "the provider's key set is unreachable or broken" (transient) from "this
// signature is bad". A refetch refused by the rate limit counts as
// transient for a token whose kid is not among the cached keys (or that has
// none): the provider may have rotated that key in since the last fetch.
// Use one probe per verification.
func Probe(ctx context.Context) (context.Context, func() error) {
	p := new(error)
	return context.WithValue(ctx, probeKey{}, p), func() error { return *p }
}

type trustedKey struct{}

// Trusted marks ctx as verifying a token that came from the provider itself
// (an ID token in a token response, received over an authenticated
// channel), not from an arbitrary party: a refetch it needs is not
// rate-limited (concurrent callers still share one fetch). The limit exists
// for tokens anyone can send (logout tokens); applied to the provider's own
// tokens, a key rotation within MinRefetchInterval of the last fetch, which
// an attacker can keep recent, would fail every sign-in and every refresh
// until the interval ends.
func Trusted(ctx context.Context) context.Context { return context.WithValue(ctx, trustedKey{}, true) }

// refetch returns fresh keys, joining a fetch in flight if there is one.
// If the last fetch started less than the minimum interval ago it fails
// fast, unless ctx is Trusted. Trusted callers share their own fetches, so
// that none of them joins a call refused by the rate limit.
func (s *Set) refetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	trusted := ctx.Value(trustedKey{}) != nil
	key := ""
	if trusted {
		key = "trusted"
	}
	// The fetch runs detached from this caller's cancellation: other callers
	// may be waiting for it. It is bounded by the fetch timeout.
	fctx := context.WithoutCancel(ctx)
	return s.flight.Do(ctx, key, func() ([]jose.JSONWebKey, error) { return s.fetchLimited(fctx, trusted) })
}

// fetchLimited fetches the key set, unless the last fetch started less than
// the minimum interval ago and the caller is not trusted. A failed fetch
// keeps the cached keys: it must not break verification.
func (s *Set) fetchLimited(ctx context.Context, trusted bool) ([]jose.JSONWebKey, error) {
	s.mu.Lock()
	if s.fetched && s.now().Sub(s.lastFetch) < s.interval && !trusted {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrVerification, ErrRateLimited)
	}
	s.fetched, s.lastFetch = true, s.now()
	s.mu.Unlock()
	keys, err := s.fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Warn("keyset: fetching JWKS failed", "url", s.url, "error", err)
		return s.keys, err
	}
	s.keys = keys
	return keys, nil
}

func (s *Set) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("keyset: fetching JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json;q=0.9, */*;q=0.1")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keyset: fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyset: reading JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("keyset: fetching JWKS: unexpected status %d", resp.StatusCode)
	}
	if len(body) > MaxJWKSSize {
		return nil, fmt.Errorf("keyset: JWKS larger than %d bytes", MaxJWKSSize)
	}
	return s.parse(body)
}

// parse decodes a JWKS document, keeping only the usable public signature keys.
func (s *Set) parse(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("keyset: decoding JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for i, raw := range doc.Keys {
		// Only public metadata is logged, never key material.
		var meta struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			Alg string `json:"alg"`
			Use string `json:"use"`
		}
		_ = json.Unmarshal(raw, &meta)
		skip := func(reason string) {
			s.log.Info("keyset: skipping unusable JWK", "index", i, "kid", meta.Kid,
				"kty", meta.Kty, "crv", meta.Crv, "alg", meta.Alg, "reason", reason)
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			skip("unparseable: " + err.Error())
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			skip("use is not sig")
			continue
		}
		if k.Algorithm != "" && !slices.Contains(algs, jose.SignatureAlgorithm(k.Algorithm)) {
			skip("unsupported alg")
			continue
		}
		// Never keep private or symmetric key material; Public strips private parts.
		pub := k.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			skip("not an RSA, EC or Ed25519 public key")
			continue
		}
		if !pub.Valid() {
			skip("invalid key")
			continue
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, ErrNoUsableKeys
	}
	return keys, nil
}
