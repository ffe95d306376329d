// Package bfftest helps test an app that uses bff: a programmable OpenID
// Provider for integration tests that sign in through the app's real
// routes, and WithUser for unit tests of a handler behind RequireSession,
// with no provider at all. README's "Testing your app" shows both.
package bfftest

import (
	"context"
	"fmt"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/sessionctx"
)

// User is an account of the test provider, and the signed-in user that
// WithUser gives a handler.
type User struct {
	Subject string // the "sub" claim; required
	Name    string // the "name" claim, if not empty
	Email   string // the "email" claim, if not empty
	// Claims are further claims of the ID token (and of User.Claims), such
	// as "groups" or "acr". Values must marshal to JSON.
	Claims map[string]any
}

// WithUser returns a context in which bff.UserFrom returns user and
// bff.TokenFrom returns token, as RequireSession passes it to a handler:
//
//	r = r.WithContext(bfftest.WithUser(r.Context(), user, token))
//
// It panics if user's claims do not marshal to JSON.
func WithUser(ctx context.Context, user User, token bff.Token) context.Context {
	ctx, err := sessionctx.With(ctx, sessionctx.Values{
		Subject: user.Subject, Name: user.Name, Email: user.Email, Claims: user.Claims,
		AccessToken: token.AccessToken, TokenType: token.TokenType, Expiry: token.Expiry,
	})
	if err != nil {
		panic(fmt.Sprintf("bfftest: the claims of user %q do not marshal to JSON: %v", user.Subject, err))
	}
	return ctx
}
