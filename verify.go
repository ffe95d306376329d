package bff

import (
	"context"
	"errors"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gobff/bff/internal/keyset"
)

// errKeysUnavailable: a token could not be verified because the provider's
// key set could not be fetched or used; nothing is known about the token.
var errKeysUnavailable = errors.New("the provider's key set is unavailable")

// verifyIDToken runs go-oidc's verification (signature, iss, aud, exp) and
// the checks go-oidc leaves to the caller: sub and iat present; azp equals
// the client ID when there are several audiences (or when present);
// at_hash, when present, matches the access token.
func (b *BFF) verifyIDToken(ctx context.Context, prov *provider, raw, accessToken string) (*oidc.IDToken, error) {
	// The token comes from the token endpoint: a key rotation may refetch
	// the keys at once (see keyset.Trusted).
	ctx, keysErr := keyset.Probe(keyset.Trusted(ctx))
	idt, err := prov.verifier.Verify(ctx, raw)
	if err != nil {
		if kerr := keysErr(); kerr != nil {
			return nil, fmt.Errorf("%w: %w", errKeysUnavailable, kerr)
		}
		return nil, err
	}
	var c struct {
		Sub string `json:"sub"`
		Iat *int64 `json:"iat"`
		Azp string `json:"azp"`
		Tid string `json:"tid"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, err
	}
	if prov.tenants != nil {
		if err := prov.tenants.check(idt.Issuer, c.Tid); err != nil {
			return nil, err
		}
	}
	switch {
	case c.Sub == "":
		return nil, errors.New("ID token has no sub")
	case c.Iat == nil:
		return nil, errors.New("ID token has no iat")
	case len(idt.Audience) > 1 && c.Azp != b.cfg.ClientID:
		return nil, errors.New("ID token has several audiences and azp is not the client ID")
	case c.Azp != "" && c.Azp != b.cfg.ClientID:
		return nil, errors.New("ID token azp is not the client ID")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return nil, errors.New("ID token at_hash does not match the access token")
		}
	}
	return idt, nil
}
