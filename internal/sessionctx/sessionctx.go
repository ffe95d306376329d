// Package sessionctx lets package bfftest put a signed-in user into a
// context the way RequireSession does, without a public function in
// package bff that production code could misuse.
package sessionctx

import (
	"context"
	"time"
)

// Values are what a handler behind RequireSession can read.
type Values struct {
	Subject, Name, Email string
	Claims               map[string]any
	AccessToken          string
	TokenType            string
	Expiry               time.Time
}

// With returns ctx carrying v. Package bff sets it when it is initialised.
var With func(ctx context.Context, v Values) (context.Context, error)
