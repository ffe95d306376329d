// Package flight runs one call per key at a time and shares its result with
// every caller of that key that arrives while it runs (single flight), for
// bff's token refreshes and activity writes.
//
// Unlike golang.org/x/sync/singleflight, a waiter whose own context ends
// stops waiting while the call goes on for the others (a refresh must not
// be cancelled by the request that started it), and a panic in the call
// becomes its error.
package flight

import (
	"context"
	"fmt"
	"sync"
)

// Group is a set of calls in flight, by key. The zero value is ready. It
// holds only calls that are running: an entry is removed when its call
// ends, so the group is bounded by the calls under way.
type Group[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// Do runs fn for key unless a call for key is running, in which case it
// waits for that call; either way it returns the call's result. If ctx ends
// first, Do returns ctx's error and fn goes on.
func (g *Group[T]) Do(ctx context.Context, key string, fn func() (T, error)) (T, error) {
	v, err, _ := g.DoShared(ctx, key, fn)
	return v, err
}

// DoShared is Do, and also reports whether this caller joined a call that
// another caller had started (its fn did not run).
func (g *Group[T]) DoShared(ctx context.Context, key string, fn func() (T, error)) (v T, err error, joined bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*call[T]{}
	}
	c, ok := g.calls[key]
	if !ok {
		c = &call[T]{done: make(chan struct{})}
		g.calls[key] = c
		go func() {
			defer func() {
				if p := recover(); p != nil {
					c.err = fmt.Errorf("flight: call panicked: %v", p)
				}
				g.mu.Lock()
				delete(g.calls, key)
				g.mu.Unlock()
				close(c.done)
			}()
			c.v, c.err = fn()
		}()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.err, ok
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err(), ok
	}
}
