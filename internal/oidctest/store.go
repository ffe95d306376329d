package oidctest

import "time"

// store is a size-capped map whose entries expire. It is not safe for
// concurrent use: callers hold Provider.mu.
type store[V any] struct {
	max   int
	m     map[string]*storeEntry[V]
	order []string // insertion order; may hold keys already deleted
}

type storeEntry[V any] struct {
	v   V
	exp time.Time
}

func newStore[V any](max int) *store[V] {
	return &store[V]{max: max, m: make(map[string]*storeEntry[V])}
}

// put inserts or updates k. When the store is full, expired entries are
// dropped first, then the oldest entries are evicted.
func (s *store[V]) put(k string, v V, exp, now time.Time) {
	if e, ok := s.m[k]; ok {
		e.v, e.exp = v, exp
		return
	}
	if len(s.m) >= s.max {
		s.sweep(now)
	}
	for len(s.m) >= s.max && len(s.order) > 0 {
		oldest := s.order[0]
		s.order = s.order[1:]
		delete(s.m, oldest)
	}
	s.m[k] = &storeEntry[V]{v: v, exp: exp}
	s.order = append(s.order, k)
	if len(s.order) > 2*len(s.m)+64 {
		s.compact()
	}
}

// get returns the unexpired value for k.
func (s *store[V]) get(k string, now time.Time) (V, bool) {
	e, ok := s.m[k]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// setExpiry changes the expiry of an existing entry.
func (s *store[V]) setExpiry(k string, exp time.Time) {
	if e, ok := s.m[k]; ok {
		e.exp = exp
	}
}

func (s *store[V]) delete(k string) { delete(s.m, k) }

// each calls f for every unexpired entry.
func (s *store[V]) each(now time.Time, f func(k string, v V)) {
	for _, k := range s.order {
		if e, ok := s.m[k]; ok && now.Before(e.exp) {
			f(k, e.v)
		}
	}
}

func (s *store[V]) sweep(now time.Time) {
	for k, e := range s.m {
		if !now.Before(e.exp) {
			delete(s.m, k)
		}
	}
	s.compact()
}

func (s *store[V]) compact() {
	order := make([]string, 0, len(s.m))
	seen := make(map[string]bool, len(s.m))
	for _, k := range s.order {
		if _, ok := s.m[k]; ok && !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	s.order = order
}
