package keyset

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

var _ oidc.KeySet = (*Set)(nil)

// secp256k1Key is an EC key on a curve go-jose does not support, without "alg",
// as published in the OpenID conformance suite's JWKS.
const secp256k1Key = `{"kty":"EC","crv":"secp256k1","kid":"k1","use":"sig",` +
	`"x":"mCpE-FjEU7-1H0jBn2pKPRmqxlcDN2eWuqMIKXK1Lso",` +
	`"y":"G1bCDUzXiJ7kKL3JR7H1G4k7yM6R1_7v8lGk2ZkT9nQ"}`

// ed448Key is an OKP key go-jose cannot parse.
const ed448Key = `{"kty":"OKP","crv":"Ed448","kid":"ed448",` +
	`"x":"X9dEm1m0Yf0s-fa5uBH0Tg3FGG4KXv-PHMkzMmeD4vT3xhTxKZ3D9sbeuTQAuGmWAXc5yT2RTxmA"}`

// fakeClock is a settable clock for the rate limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// jwksServer serves a mutable JWKS document and counts requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu          sync.Mutex
	body        []byte
	status      int
	contentType string
	gate        chan struct{} // if non-nil, requests wait until it is closed
}

func newJWKSServer(t *testing.T, rawKeys ...string) *jwksServer {
	t.Helper()
	js := &jwksServer{status: http.StatusOK, contentType: "application/jwk-set+json"}
	js.setRaw(rawKeys...)
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.hits.Add(1)
		js.mu.Lock()
		body, status, ct, gate := js.body, js.status, js.contentType, js.gate
		js.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) setRaw(rawKeys ...string) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.body = []byte(`{"keys":[` + strings.Join(rawKeys, ",") + `]}`)
}

func (js *jwksServer) setBody(status int, contentType string, body []byte) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.status, js.contentType, js.body = status, contentType, body
}

// testKey is a private signing key with its public JWK.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newRSAKey(t testing.TB, kid string, alg jose.SignatureAlgorithm) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: alg, priv: k}
}

func newECKey(t testing.TB, kid string, curve elliptic.Curve, alg jose.SignatureAlgorithm) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: alg, priv: k}
}

func newEdKey(t testing.TB, kid string) testKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.EdDSA, priv: k}
}

// jwk returns the public JWK JSON, with "alg" when withAlg.
func (k testKey) jwk(t testing.TB, withAlg bool) string {
	t.Helper()
	j := jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Use: "sig"}
	if withAlg {
		j.Algorithm = string(k.alg)
	}
	b, err := j.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign signs payload; the kid header is set unless noKid.
func (k testKey) sign(t testing.TB, payload string, noKid bool) string {
	t.Helper()
	var key any = jose.JSONWebKey{Key: k.priv, KeyID: k.kid}
	if noKid {
		key = k.priv
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newSet(t testing.TB, url string, clk *fakeClock) *Set {
	t.Helper()
	return New(Config{
		URL:    url,
		Now:    clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// checkNoLeak fails if err's text contains the token or one of its segments.
func checkNoLeak(t testing.TB, err error, jwt string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if jwt != "" && strings.Contains(msg, jwt) {
		t.Fatalf("error contains the token: %q", msg)
	}
	for _, part := range strings.Split(jwt, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Fatalf("error contains a token segment: %q", msg)
		}
	}
}

const payload = `{"iss":"https://op.example","sub":"alice"}`

func TestSkipsUnparseableKeys(t *testing.T) {
	good := newRSAKey(t, "good", jose.RS256)
	srv := newJWKSServer(t,
		secp256k1Key,
		ed448Key,
		`{"kty":"oct","kid":"sym","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`,
		`{"kty":"RSA","kid":"broken","n":"AQAB"}`,
		`{"kty":"WAT","kid":"unknown-kty"}`,
		good.jwk(t, true),
	)
	s := newSet(t, srv.URL, newClock())
	for _, noKid := range []bool{false, true} {
		jwt := good.sign(t, payload, noKid)
		got, err := s.VerifySignature(t.Context(), jwt)
		if err != nil {
			t.Fatalf("noKid=%v: %v", noKid, err)
		}
		if string(got) != payload {
			t.Fatalf("payload = %q", got)
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keys) != 1 || s.keys[0].KeyID != "good" {
		t.Fatalf("kept keys = %+v", s.keys)
	}
}

func TestZeroUsableKeys(t *testing.T) {
	srv := newJWKSServer(t, secp256k1Key, ed448Key)
	s := newSet(t, srv.URL, newClock())
	k := newRSAKey(t, "good", jose.RS256)
	jwt := k.sign(t, payload, false)
	_, err := s.VerifySignature(t.Context(), jwt)
	if !errors.Is(err, ErrNoUsableKeys) {
		t.Fatalf("err = %v, want ErrNoUsableKeys", err)
	}
	checkNoLeak(t, err, jwt)
}

func TestAlgorithms(t *testing.T) {
	keys := []testKey{
		newRSAKey(t, "rs256", jose.RS256),
		newRSAKey(t, "rs512", jose.RS512),
		newRSAKey(t, "ps256", jose.PS256),
		newECKey(t, "es256", elliptic.P256(), jose.ES256),
		newECKey(t, "es384", elliptic.P384(), jose.ES384),
		newECKey(t, "es512", elliptic.P521(), jose.ES512),
		newEdKey(t, "ed"),
	}
	var raw []string
	for i, k := range keys {
		raw = append(raw, k.jwk(t, i%2 == 0)) // some keys without "alg"
	}
	srv := newJWKSServer(t, raw...)
	s := newSet(t, srv.URL, newClock())
	for _, k := range keys {
		for _, noKid := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/noKid=%v", k.kid, noKid), func(t *testing.T) {
				got, err := s.VerifySignature(t.Context(), k.sign(t, payload, noKid))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != payload {
					t.Fatalf("payload = %q", got)
				}
			})
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestKeyAlgMismatch(t *testing.T) {
	// The key is published for RS256 only; a PS256 signature by the same key is refused.
	k := newRSAKey(t, "a", jose.RS256)
	srv := newJWKSServer(t, k.jwk(t, true))
	s := newSet(t, srv.URL, newClock())
	k.alg = jose.PS256
	jwt := k.sign(t, payload, false)
	_, err := s.VerifySignature(t.Context(), jwt)
	if !errors.Is(err, ErrVerification) {
		t.Fatalf("err = %v, want ErrVerification", err)
	}
}

func TestBadSignature(t *testing.T) {
	good := newRSAKey(t, "a", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	clk := newClock()
	s := newSet(t, srv.URL, clk)
	if _, err := s.VerifySignature(t.Context(), good.sign(t, payload, false)); err != nil {
		t.Fatal(err)
	}

	attacker := newRSAKey(t, "a", jose.RS256) // same kid, other key
	forged := attacker.sign(t, payload, false)

	valid := good.sign(t, payload, false)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`)) + "." + parts[2]

	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)-1] ^= 1
	flipped := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	for name, jwt := range map[string]string{"other key": forged, "tampered": tampered, "flipped": flipped} {
		t.Run(name, func(t *testing.T) {
			clk.Advance(time.Minute) // allow the refetch a failure triggers
			_, err := s.VerifySignature(t.Context(), jwt)
			if !errors.Is(err, ErrVerification) {
				t.Fatalf("err = %v, want ErrVerification", err)
			}
			checkNoLeak(t, err, jwt)
		})
	}
}

func TestAlgNone(t *testing.T) {
	good := newRSAKey(t, "a", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, false))
	s := newSet(t, srv.URL, newClock())
	enc := base64.RawURLEncoding.EncodeToString
	body := enc([]byte(payload))
	for _, hdr := range []string{`{"alg":"none"}`, `{"alg":"none","kid":"a"}`, `{"alg":"None","kid":"a"}`, `{"kid":"a"}`} {
		for _, jwt := range []string{enc([]byte(hdr)) + "." + body + ".", enc([]byte(hdr)) + "." + body + "." + enc([]byte("x"))} {
			_, err := s.VerifySignature(t.Context(), jwt)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: err = %v, want ErrMalformed", hdr, err)
			}
			checkNoLeak(t, err, jwt)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("fetches = %d, want 0", n)
	}
}

func TestHS256WithPublicKeyAsSecret(t *testing.T) {
	good := newRSAKey(t, "a", jose.RS256)
	pubJWK := good.jwk(t, true)
	srv := newJWKSServer(t, pubJWK)
	s := newSet(t, srv.URL, newClock())

	der, err := x509.MarshalPKIXPublicKey(good.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	enc := base64.RawURLEncoding.EncodeToString
	for name, secret := range map[string][]byte{"der": der, "pem": pemBytes, "jwk": []byte(pubJWK)} {
		for _, alg := range []string{"HS256", "HS384", "HS512"} {
			signingInput := enc([]byte(`{"alg":"`+alg+`","kid":"a"}`)) + "." + enc([]byte(payload))
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte(signingInput))
			jwt := signingInput + "." + enc(mac.Sum(nil))
			_, err := s.VerifySignature(t.Context(), jwt)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s/%s: err = %v, want ErrMalformed", name, alg, err)
			}
			checkNoLeak(t, err, jwt)
		}
	}
}

func TestMalformed(t *testing.T) {
	good := newRSAKey(t, "a", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	s := newSet(t, srv.URL, newClock())
	valid := good.sign(t, payload, false)
	for _, jwt := range []string{
		"", "a.b", "a.b.c.d", "not a jwt at all", "!!!.###.$$$",
		strings.Replace(valid, ".", "..", 1),
		`{"payload":"eyJ9","signatures":[]}`,
		"eyJhbGciOiJSUzI1NiJ9.eyJzZWNyZXQiOiJ0b3Atc2VjcmV0LXZhbHVlIn0.c2lnbmF0dXJl" + "%%",
	} {
		_, err := s.VerifySignature(t.Context(), jwt)
		if err == nil {
			t.Fatalf("%q verified", jwt)
		}
		checkNoLeak(t, err, jwt)
	}
}

func TestUnknownKidRefetchRateLimited(t *testing.T) {
	good := newRSAKey(t, "good", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	clk := newClock()
	s := newSet(t, srv.URL, clk)
	if _, err := s.VerifySignature(t.Context(), good.sign(t, payload, false)); err != nil {
		t.Fatal(err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}

	attacker := newRSAKey(t, "", jose.RS256)
	forge := func() string {
		k := attacker
		k.kid = rand.Text()
		return k.sign(t, payload, false)
	}
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = forge()
	}

	// Within the interval of the initial fetch: no network call at all.
	for _, jwt := range tokens {
		_, err := s.VerifySignature(t.Context(), jwt)
		if !errors.Is(err, ErrRateLimited) || !errors.Is(err, ErrVerification) {
			t.Fatalf("err = %v, want ErrRateLimited and ErrVerification", err)
		}
		checkNoLeak(t, err, jwt)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}

	// After the interval, 100 concurrent forged tokens: exactly one refetch.
	clk.Advance(DefaultMinRefetchInterval)
	var wg sync.WaitGroup
	for _, jwt := range tokens {
		wg.Go(func() {
			_, err := s.VerifySignature(t.Context(), jwt)
			if !errors.Is(err, ErrVerification) {
				t.Errorf("err = %v, want ErrVerification", err)
			}
		})
	}
	wg.Wait()
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}

	// The good token still verifies from the cache while rate-limited.
	if _, err := s.VerifySignature(t.Context(), good.sign(t, payload, false)); err != nil {
		t.Fatal(err)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
}

func TestConfigurableInterval(t *testing.T) {
	good := newRSAKey(t, "good", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	clk := newClock()
	s := New(Config{URL: srv.URL, Now: clk.Now, MinRefetchInterval: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	forged := newRSAKey(t, "x", jose.RS256).sign(t, payload, false)
	for range 3 {
		_, _ = s.VerifySignature(t.Context(), forged)
		clk.Advance(30 * time.Second)
	}
	// fetches at t=0 and t=60s.
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
}

func TestRotation(t *testing.T) {
	old := newRSAKey(t, "2025", jose.RS256)
	srv := newJWKSServer(t, old.jwk(t, true))
	clk := newClock()
	s := newSet(t, srv.URL, clk)
	if _, err := s.VerifySignature(t.Context(), old.sign(t, payload, false)); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Hour)
	rotated := newECKey(t, "2026", elliptic.P256(), jose.ES256)
	srv.setRaw(secp256k1Key, rotated.jwk(t, true))

	// The first token with the new kid triggers the refetch and verifies.
	got, err := s.VerifySignature(t.Context(), rotated.sign(t, payload, false))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != payload {
		t.Fatalf("payload = %q", got)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	// The retired key is gone.
	clk.Advance(time.Hour)
	if _, err := s.VerifySignature(t.Context(), old.sign(t, payload, false)); !errors.Is(err, ErrVerification) {
		t.Fatalf("retired key: err = %v, want ErrVerification", err)
	}
}

func TestRotationRightAfterFetch(t *testing.T) {
	// A rotation within the interval of the last fetch is picked up once the interval has passed.
	old := newRSAKey(t, "old", jose.RS256)
	srv := newJWKSServer(t, old.jwk(t, true))
	clk := newClock()
	s := newSet(t, srv.URL, clk)
	if _, err := s.VerifySignature(t.Context(), old.sign(t, payload, false)); err != nil {
		t.Fatal(err)
	}
	rotated := newRSAKey(t, "new", jose.RS256)
	srv.setRaw(old.jwk(t, true), rotated.jwk(t, true))
	jwt := rotated.sign(t, payload, false)
	clk.Advance(time.Second)
	if _, err := s.VerifySignature(t.Context(), jwt); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	clk.Advance(DefaultMinRefetchInterval)
	if _, err := s.VerifySignature(t.Context(), jwt); err != nil {
		t.Fatal(err)
	}
}

func TestFetchErrorsKeepCachedKeys(t *testing.T) {
	good := newRSAKey(t, "good", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	clk := newClock()
	s := newSet(t, srv.URL, clk)
	valid := good.sign(t, payload, false)
	if _, err := s.VerifySignature(t.Context(), valid); err != nil {
		t.Fatal(err)
	}
	unknown := newRSAKey(t, "new", jose.RS256).sign(t, payload, false)

	for _, c := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"500", http.StatusInternalServerError, []byte(`{"keys":[]}`)},
		{"404", http.StatusNotFound, nil},
		{"html", http.StatusOK, []byte("<html>down</html>")},
		{"empty set", http.StatusOK, []byte(`{"keys":[]}`)},
		{"only unusable", http.StatusOK, []byte(`{"keys":[` + secp256k1Key + `]}`)},
		{"too large", http.StatusOK, []byte(`{"keys":[` + good.jwk(t, true) + `],"pad":"` + strings.Repeat("x", MaxJWKSSize) + `"}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv.setBody(c.status, "text/html", c.body)
			clk.Advance(time.Minute)
			hits := srv.hits.Load()
			_, err := s.VerifySignature(t.Context(), unknown)
			if err == nil {
				t.Fatal("unknown key verified")
			}
			checkNoLeak(t, err, unknown)
			if srv.hits.Load() != hits+1 {
				t.Fatal("no refetch")
			}
			if _, err := s.VerifySignature(t.Context(), valid); err != nil {
				t.Fatalf("cached key lost: %v", err)
			}
		})
	}

	// Unusual content types are tolerated.
	srv.setBody(http.StatusOK, "text/plain; charset=utf-8", []byte(`{"keys":[`+good.jwk(t, true)+`]}`))
	clk.Advance(time.Minute)
	if _, err := s.VerifySignature(t.Context(), unknown); !errors.Is(err, ErrVerification) {
		t.Fatalf("err = %v, want ErrVerification", err)
	}
	s.mu.Lock()
	n := len(s.keys)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("keys = %d", n)
	}
}

func TestFetchTimeout(t *testing.T) {
	good := newRSAKey(t, "good", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	gate := make(chan struct{})
	defer close(gate)
	srv.mu.Lock()
	srv.gate = gate
	srv.mu.Unlock()
	s := New(Config{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.timeout = 50 * time.Millisecond
	start := time.Now()
	_, err := s.VerifySignature(t.Context(), good.sign(t, payload, false))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestCallerCancelDoesNotCancelSharedFetch(t *testing.T) {
	good := newRSAKey(t, "good", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.gate = gate
	srv.mu.Unlock()
	s := newSet(t, srv.URL, newClock())
	jwt := good.sign(t, payload, false)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.VerifySignature(ctx, jwt)
		done <- err
	}()
	for srv.hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		_, err := s.VerifySignature(t.Context(), jwt)
		second <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(gate)
	if err := <-second; err != nil {
		t.Fatalf("waiting caller: %v", err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestConcurrentVerify(t *testing.T) {
	keys := []testKey{newRSAKey(t, "r", jose.RS256), newECKey(t, "e", elliptic.P256(), jose.ES256)}
	srv := newJWKSServer(t, keys[0].jwk(t, true), keys[1].jwk(t, true))
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.gate = gate
	srv.mu.Unlock()
	clk := newClock()
	s := newSet(t, srv.URL, clk)
	good := []string{keys[0].sign(t, payload, false), keys[1].sign(t, payload, true)}
	forged := newRSAKey(t, "zzz", jose.RS256).sign(t, payload, false)

	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if i%4 == 3 {
				clk.Advance(time.Second)
				_, err := s.VerifySignature(t.Context(), forged)
				if err == nil {
					t.Error("forged token verified")
				}
				return
			}
			got, err := s.VerifySignature(t.Context(), good[i%2])
			if err != nil || string(got) != payload {
				t.Errorf("verify: %q, %v", got, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let callers pile up on the first fetch
	close(gate)
	wg.Wait()
	// 16 forged tokens advanced the clock by 16 s in total: at most 3 fetches at a 10 s interval.
	if n := srv.hits.Load(); n < 1 || n > 3 {
		t.Fatalf("fetches = %d", n)
	}
}

func TestPrivateKeysStripped(t *testing.T) {
	k := newRSAKey(t, "a", jose.RS256)
	privJWK, err := jose.JSONWebKey{Key: k.priv, KeyID: "a", Algorithm: "RS256"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, string(privJWK), `{"kty":"RSA","kid":"enc","use":"enc","n":"x","e":"AQAB"}`)
	s := newSet(t, srv.URL, newClock())
	if _, err := s.VerifySignature(t.Context(), k.sign(t, payload, false)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keys) != 1 || !s.keys[0].IsPublic() {
		t.Fatalf("keys = %+v", s.keys)
	}
}

func TestNoURL(t *testing.T) {
	if _, err := New(Config{}).VerifySignature(t.Context(), "a.b.c"); err == nil {
		t.Fatal("no error")
	}
}

func FuzzVerifySignature(f *testing.F) {
	good := newRSAKey(f, "a", jose.RS256)
	ec := newECKey(f, "b", elliptic.P256(), jose.ES256)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[` + secp256k1Key + "," + good.jwk(f, true) + "," + ec.jwk(f, false) + `]}`))
	}))
	defer srv.Close()
	s := New(Config{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	valid := good.sign(f, payload, false)
	if _, err := s.VerifySignature(context.Background(), valid); err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(ec.sign(f, payload, true))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, jwt string) {
		got, err := s.VerifySignature(context.Background(), jwt)
		if err != nil {
			// Only fixed sentinel texts: nothing of the input can leak.
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVerification) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		// Anything that verifies must be a token really signed by one of the keys.
		if string(got) != payload {
			t.Fatalf("unexpected payload verified: %q", got)
		}
		var m map[string]any
		if json.Unmarshal(got, &m) != nil {
			t.Fatal("payload is not JSON")
		}
	})
}

// Probe tells "the key set could not be had" from "the signature is bad".
func TestProbe(t *testing.T) {
	good := newRSAKey(t, "a", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	clk := newClock()
	s := newSet(t, srv.URL, clk)

	ctx, probe := Probe(t.Context())
	if _, err := s.VerifySignature(ctx, good.sign(t, payload, false)); err != nil || probe() != nil {
		t.Fatalf("good token: err %v, probe %v", err, probe())
	}

	ctx, probe = Probe(t.Context())
	clk.Advance(time.Minute)
	if _, err := s.VerifySignature(ctx, newRSAKey(t, "a", jose.RS256).sign(t, payload, false)); !errors.Is(err, ErrVerification) || probe() != nil {
		t.Fatalf("bad signature with the keys at hand: err %v, probe %v (want ErrVerification, no probe error)", err, probe())
	}

	rotated := newRSAKey(t, "b", jose.RS256)
	srv.setBody(http.StatusInternalServerError, "text/plain", []byte("down"))
	clk.Advance(time.Minute)
	ctx, probe = Probe(t.Context())
	if _, err := s.VerifySignature(ctx, rotated.sign(t, payload, false)); err == nil || probe() == nil {
		t.Fatalf("unknown kid with the key set down: err %v, probe %v (want both)", err, probe())
	}
}

// A refetch that is rate-limited leaves a token with an unknown kid (or
// none) unverified for now, not bad: the probe reports it, since the key may
// have been rotated in since the last fetch. A known kid whose key does not
// verify the signature is a bad signature.
func TestProbeRateLimited(t *testing.T) {
	good := newRSAKey(t, "a", jose.RS256)
	srv := newJWKSServer(t, good.jwk(t, true))
	s := newSet(t, srv.URL, newClock())
	if _, err := s.VerifySignature(t.Context(), good.sign(t, payload, false)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		key       testKey
		transient bool
	}{
		{"unknown kid", newRSAKey(t, "b", jose.RS256), true},
		{"no kid", newRSAKey(t, "", jose.RS256), true},
		{"known kid, other key", newRSAKey(t, "a", jose.RS256), false},
	} {
		ctx, probe := Probe(t.Context())
		_, err := s.VerifySignature(ctx, tc.key.sign(t, payload, false))
		if !errors.Is(err, ErrRateLimited) || (probe() != nil) != tc.transient {
			t.Errorf("%s: err %v, probe %v; want rate-limited, probe error %v", tc.name, err, probe(), tc.transient)
		}
	}
}
