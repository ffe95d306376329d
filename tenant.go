package bff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// tenantPlaceholder stands for the tenant in a multi-tenant issuer
// template (Entra ID's common and organizations endpoints).
const tenantPlaceholder = "{tenantid}"

// tenantIssuer is a multi-tenant issuer template, such as
// https://login.microsoftonline.com/{tenantid}/v2.0, and the tenants
// allowed to sign in through it (nil: any, Options.InsecureAnyTenant).
type tenantIssuer struct {
	prefix, suffix string // the template around the placeholder
	allowed        []string
}

// multiTenant reports whether Options accept a templated issuer.
func (c *config) multiTenant() bool { return len(c.Tenants) > 0 || c.InsecureAnyTenant }

// validateTenants checks Options.Tenants and InsecureAnyTenant.
func validateTenants(c *config) error {
	if len(c.Tenants) > 0 && c.InsecureAnyTenant {
		return fieldErr("Tenants", "and InsecureAnyTenant are both set: list the tenants, or accept any")
	}
	for i, t := range c.Tenants {
		if !validTenant(t) {
			return fieldErr("Tenants", "tenant %d (%q) is not a tenant ID: non-empty, without / ? # { }", i, t)
		}
	}
	return nil
}

func validTenant(t string) bool { return t != "" && !strings.ContainsAny(t, "/?#{} ") }

// discoverProvider fetches the discovery document of Options.Issuer. With
// Options.Tenants (or InsecureAnyTenant), a discovered issuer that is
// Options.Issuer with its tenant segment replaced by the placeholder is
// accepted, and returned as the template every ID token's iss is checked
// against; any other issuer mismatch stays an error.
func (b *BFF) discoverProvider(ctx context.Context) (*oidc.Provider, *tenantIssuer, error) {
	op, err := oidc.NewProvider(ctx, b.cfg.Issuer)
	var mismatch *oidc.IssuerMismatchError
	if !b.cfg.multiTenant() || !errors.As(err, &mismatch) {
		return op, nil, err
	}
	tmpl := mismatch.Discovered
	t, ok := newTenantIssuer(b.cfg.Issuer, tmpl)
	if !ok {
		return nil, nil, err
	}
	if !b.cfg.InsecureAnyTenant {
		t.allowed = b.cfg.Tenants
	}
	// go-oidc checks no issuer with InsecureIssuerURLContext: check that
	// the document fetched again still names the template.
	op, err = oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, tmpl), b.cfg.Issuer)
	if err != nil {
		return nil, nil, err
	}
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := op.Claims(&d); err != nil || d.Issuer != tmpl {
		return nil, nil, fmt.Errorf("the discovery document's issuer changed from %q to %q", tmpl, d.Issuer)
	}
	return op, t, nil
}

// newTenantIssuer reads tmpl as a tenant template of issuer: the same URL
// but for one path segment, which is the placeholder in tmpl.
func newTenantIssuer(issuer, tmpl string) (*tenantIssuer, bool) {
	prefix, suffix, ok := strings.Cut(tmpl, tenantPlaceholder)
	if !ok || strings.Contains(suffix, tenantPlaceholder) || !strings.HasSuffix(prefix, "/") ||
		(suffix != "" && !strings.HasPrefix(suffix, "/")) {
		return nil, false
	}
	t := &tenantIssuer{prefix: prefix, suffix: suffix}
	_, ok = t.tenant(issuer)
	return t, ok
}

// tenant is the tenant segment of iss, if iss fits the template.
func (t *tenantIssuer) tenant(iss string) (string, bool) {
	rest, ok := strings.CutPrefix(iss, t.prefix)
	if !ok {
		return "", false
	}
	tid, ok := strings.CutSuffix(rest, t.suffix)
	return tid, ok && validTenant(tid)
}

// check checks an ID token's iss and tid claims: iss is the template with
// tid, a tenant allowed to sign in.
func (t *tenantIssuer) check(iss, tid string) error {
	switch got, ok := t.tenant(iss); {
	case !ok || got != tid:
		return fmt.Errorf("ID token iss %q is not the issuer of its tenant (tid %q)", iss, tid)
	case t.allowed != nil && !slices.Contains(t.allowed, tid):
		return fmt.Errorf("ID token tenant %q is not one of Options.Tenants", tid)
	}
	return nil
}

// issuerOK reports whether iss (an RFC 9207 iss parameter) is the
// provider's: Options.Issuer, or with a tenant template the issuer of an
// allowed tenant.
func (b *BFF) issuerOK(prov *provider, iss string) bool {
	if prov.tenants == nil {
		return iss == b.cfg.Issuer
	}
	tid, ok := prov.tenants.tenant(iss)
	return ok && prov.tenants.check(iss, tid) == nil
}
