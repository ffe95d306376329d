package bff

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Bounds on a back-channel logout token's times (OpenID Connect
// Back-Channel Logout 1.0 leaves the acceptable range to the client).
const (
	// logoutSkew is how far a token's iat (or nbf) may be in the future:
	// the provider's clock may run ahead.
	logoutSkew = time.Minute
	// logoutNoExpMaxAge is how long after its iat a token without exp is
	// accepted (ory hydra sends none).
	logoutNoExpMaxAge = 2 * time.Minute
	// logoutMaxAge is how long after its iat any token is accepted,
	// whatever its exp. It also bounds the jti's replay entry.
	logoutMaxAge = 10 * time.Minute
)

const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutToken is a verified back-channel logout token.
type logoutToken struct {
	Issuer, Subject, SessionID, TokenID string
	until                               time.Time // accepted until then: min(exp, iat+logoutMaxAge), or iat+logoutNoExpMaxAge
}

// verifyLogoutToken verifies a back-channel logout token. go-oidc checks
// the signature (over the key set), iss and aud, without its exp check,
// since some providers send no exp; every rule of §2.4 and §2.6 is then
// checked here on the verified claims. Errors never hold the token.
func (b *BFF) verifyLogoutToken(ctx context.Context, prov *provider, raw string) (*logoutToken, error) {
	idt, err := prov.logoutVerifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := checkLogoutTyp(raw); err != nil {
		return nil, err
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("logout token claims: %w", err)
	}
	return checkLogoutClaims(claims, b.cfg.Issuer, b.cfg.ClientID, b.cfg.Now())
}

// checkLogoutTyp: a typ header, when present, must say a logout token
// (logout+jwt, with or without "application/") or say nothing more than
// JWT, as Auth0, Keycloak and ory hydra send; any other explicit type (an
// access token's at+jwt, say) is another kind of JWT (§4.1).
func checkLogoutTyp(raw string) error {
	seg, _, _ := strings.Cut(raw, ".")
	js, err := base64.RawURLEncoding.DecodeString(seg)
	var hdr map[string]json.RawMessage
	if err != nil || json.Unmarshal(js, &hdr) != nil {
		return errors.New("logout token header does not decode")
	}
	t, ok := hdr["typ"]
	if !ok {
		return nil
	}
	var typ string
	if json.Unmarshal(t, &typ) != nil || string(t) == "null" {
		return errors.New("logout token typ is not a string")
	}
	switch strings.ToLower(typ) {
	case "logout+jwt", "application/logout+jwt", "jwt":
		return nil
	}
	return fmt.Errorf("logout token typ %.40q is not logout+jwt", typ)
}

// checkLogoutClaims checks the claims of a logout token whose signature is
// verified, member names exactly as the specification spells them.
func checkLogoutClaims(c map[string]json.RawMessage, issuer, clientID string, now time.Time) (*logoutToken, error) {
	var lt logoutToken
	var err error
	if lt.Issuer, err = logoutString(c, "iss", true); err != nil {
		return nil, err
	}
	if lt.Issuer != issuer {
		return nil, fmt.Errorf("logout token iss %q is not %q", lt.Issuer, issuer)
	}
	if err := checkAudience(c["aud"], clientID); err != nil {
		return nil, err
	}
	if lt.TokenID, err = logoutString(c, "jti", true); err != nil {
		return nil, err
	}
	if lt.Subject, err = logoutString(c, "sub", false); err != nil {
		return nil, err
	}
	if lt.SessionID, err = logoutString(c, "sid", false); err != nil {
		return nil, err
	}
	if lt.Subject == "" && lt.SessionID == "" {
		return nil, errors.New("logout token has neither sub nor sid")
	}
	if _, ok := c["nonce"]; ok {
		return nil, errors.New("logout token has a nonce")
	}
	if err := checkLogoutEvent(c["events"]); err != nil {
		return nil, err
	}
	if lt.until, err = logoutUntil(c, now); err != nil {
		return nil, err
	}
	return &lt, nil
}

// logoutString returns claim k, which must be a string when present, and
// a non-empty one when required.
func logoutString(c map[string]json.RawMessage, k string, required bool) (string, error) {
	raw, ok := c[k]
	if !ok {
		if required {
			return "", fmt.Errorf("logout token has no %s", k)
		}
		return "", nil
	}
	var s string
	if string(raw) == "null" || json.Unmarshal(raw, &s) != nil || required && s == "" {
		return "", fmt.Errorf("logout token %s is not a non-empty string", k)
	}
	return s, nil
}

func checkAudience(raw json.RawMessage, clientID string) error {
	var one string
	var many []string
	switch {
	case json.Unmarshal(raw, &one) == nil && string(raw) != "null":
		many = []string{one}
	case json.Unmarshal(raw, &many) != nil || string(raw) == "null":
		return errors.New("logout token aud is neither a string nor an array of strings")
	}
	if !slices.Contains(many, clientID) {
		return fmt.Errorf("logout token aud %q does not contain the client ID", many)
	}
	return nil
}

// checkLogoutEvent: events is a JSON object with the back-channel logout
// member, whose value is a JSON object.
func checkLogoutEvent(raw json.RawMessage) error {
	var events map[string]json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil || events == nil {
		return errors.New("logout token events is not a JSON object")
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(events[backchannelEvent], &ev); err != nil || ev == nil {
		return errors.New("logout token events has no " + backchannelEvent + " object")
	}
	return nil
}

// logoutUntil checks iat, nbf and exp, and returns until when the token
// is accepted.
func logoutUntil(c map[string]json.RawMessage, now time.Time) (time.Time, error) {
	iat, ok, err := timeClaim(c, "iat")
	switch {
	case err != nil:
		return time.Time{}, err
	case !ok:
		return time.Time{}, errors.New("logout token has no iat")
	case iat.After(now.Add(logoutSkew)):
		return time.Time{}, fmt.Errorf("logout token iat is %v in the future", iat.Sub(now))
	}
	if nbf, ok, err := timeClaim(c, "nbf"); err != nil || ok && nbf.After(now.Add(logoutSkew)) {
		return time.Time{}, fmt.Errorf("logout token nbf is in the future (%v)", err)
	}
	exp, hasExp, err := timeClaim(c, "exp")
	if err != nil {
		return time.Time{}, err
	}
	until := iat.Add(logoutNoExpMaxAge)
	if hasExp {
		until = iat.Add(logoutMaxAge)
		if exp.Before(until) {
			until = exp
		}
	}
	if !now.Before(until) {
		return time.Time{}, fmt.Errorf("logout token expired or too old (iat %v ago, exp present %v)", now.Sub(iat), hasExp)
	}
	return until, nil
}

// timeClaim returns a NumericDate claim, which must be a number when
// present; values beyond the year 9999 count as the year 9999.
func timeClaim(c map[string]json.RawMessage, k string) (time.Time, bool, error) {
	raw, ok := c[k]
	if !ok {
		return time.Time{}, false, nil
	}
	var v float64
	if string(raw) == "null" || json.Unmarshal(raw, &v) != nil {
		return time.Time{}, true, fmt.Errorf("logout token %s is not a number", k)
	}
	v = min(max(v, 0), 253402300799)
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}
