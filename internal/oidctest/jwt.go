package oidctest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// SignOptions controls how SignJWT signs.
type SignOptions struct {
	// AlgNone produces an unsigned JWT ("alg":"none", empty signature).
	AlgNone bool
	// UnknownKey signs with a key that is not in the JWKS. Unless KID is
	// set, the header carries the kid of the published key, so verification
	// fails on the signature rather than on an unknown kid.
	UnknownKey bool
	// KID overrides the "kid" header.
	KID string
	// Typ sets the "typ" header (default "JWT").
	Typ string
	// NoTyp leaves the "typ" header out.
	NoTyp bool
}

// SignJWT signs claims with the provider's current key (see SignOptions for
// forgeries). It panics on marshalling errors (test helper).
func (p *Provider) SignJWT(claims map[string]any, opt SignOptions) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("oidctest: marshal claims: %v", err))
	}
	typ := opt.Typ
	if typ == "" {
		typ = "JWT"
	}
	if opt.AlgNone {
		hdr := map[string]any{"alg": "none"}
		if !opt.NoTyp {
			hdr["typ"] = typ
		}
		if opt.KID != "" {
			hdr["kid"] = opt.KID
		}
		h, _ := json.Marshal(hdr)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	}
	p.mu.Lock()
	key := p.keys.current
	kid := key.kid
	if opt.UnknownKey {
		key = p.keys.unknownKey()
	}
	p.mu.Unlock()
	if opt.KID != "" {
		kid = opt.KID
	}
	return signJWS(key, kid, typ, payload, opt.NoTyp)
}

// signJWS signs payload with key, kid and typ in the header (none with
// noTyp), in compact serialization.
func signJWS(key *signingKey, kid, typ string, payload []byte, noTyp bool) string {
	so := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if !noTyp {
		so = so.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: key.key}, so)
	if err != nil {
		panic(fmt.Sprintf("oidctest: signer: %v", err))
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(fmt.Sprintf("oidctest: sign: %v", err))
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(fmt.Sprintf("oidctest: serialize: %v", err))
	}
	return s
}

// LogoutToken returns a valid back-channel logout token for sub and/or sid
// (empty values are omitted): iss, aud, iat, exp (+2 min), random jti,
// events, typ "logout+jwt". mutate, if non-nil, may change the claims before
// signing.
func (p *Provider) LogoutToken(sub, sid string, mutate func(map[string]any)) string {
	now := p.now()
	claims := map[string]any{
		"iss": p.tokenIssuer(),
		"aud": p.cfg.ClientID,
		"iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomString(),
		"events": map[string]any{
			"http://schemas.openid.net/event/backchannel-logout": map[string]any{},
		},
	}
	if sub != "" {
		claims["sub"] = sub
	}
	if sid != "" {
		claims["sid"] = sid
	}
	if mutate != nil {
		mutate(claims)
	}
	return p.SignJWT(claims, SignOptions{Typ: "logout+jwt"})
}

// atHash computes at_hash for RS256/ES256: base64url of the left half of
// SHA-256(access token).
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// verifyOwnJWT checks the signature of a JWT issued by this provider (with
// any published key) and returns its claims. Expiry is not checked.
func (p *Provider) verifyOwnJWT(token string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, err
	}
	for _, k := range p.PublicKeys().Keys {
		payload, err := jws.Verify(k.Key)
		if err != nil {
			continue
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			return nil, err
		}
		if claims["iss"] != p.tokenIssuer() {
			return nil, errors.New("wrong issuer")
		}
		return claims, nil
	}
	return nil, errors.New("bad signature")
}
