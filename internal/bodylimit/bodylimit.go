// Package bodylimit bounds the response bodies an http.Client reads, for
// clients that talk to a party that may misbehave (the identity provider):
// go-oidc reads discovery and userinfo bodies whole, without a limit.
package bodylimit

import (
	"errors"
	"io"
	"net/http"
)

// ErrTooLarge is returned by a Read past the limit.
var ErrTooLarge = errors.New("bodylimit: response body exceeds the limit")

// Client returns a copy of c whose responses fail with ErrTooLarge once a
// body grows past max bytes. A body of exactly max bytes reads normally.
func Client(c *http.Client, max int64) *http.Client {
	cc := *c
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cc.Transport = transport{rt: rt, max: max}
	return &cc
}

type transport struct {
	rt  http.RoundTripper
	max int64
}

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &body{rc: resp.Body, left: t.max}
	return resp, nil
}

type body struct {
	rc   io.ReadCloser
	left int64 // bytes still allowed; -1 once the limit was passed
}

func (l *body) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	// Read at most one byte past the limit, to tell "exactly at the limit"
	// from "over it".
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	if int64(n) > l.left {
		l.left = -1
		return 0, ErrTooLarge
	}
	l.left -= int64(n)
	return n, err
}

func (l *body) Close() error { return l.rc.Close() }
