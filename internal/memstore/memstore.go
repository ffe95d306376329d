// Package memstore is bff's default in-memory scs.Store.
//
// It behaves like scs/v2/memstore, with one difference that matters to a
// library: its cleanup goroutine can be stopped without a data race
// (scs/v2/memstore creates its stop channel inside the goroutine, so calling
// StopCleanup soon after New races; bff's Close must stop it to leak
// nothing).
package memstore

import (
	"sync"
	"time"
)

type item struct {
	b      []byte
	expiry int64
}

// Store is an in-memory scs.Store. Expired records are invisible at once and
// removed every cleanup interval.
type Store struct {
	mu    sync.RWMutex
	items map[string]item
	stop  chan struct{}
	done  chan struct{}
}

// New returns a Store that removes expired records every interval.
func New(interval time.Duration) *Store {
	s := &Store{items: map[string]item{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.cleanup(interval)
	return s
}

// Find returns the record for key; found is false if it is missing or expired.
func (s *Store) Find(key string) ([]byte, bool, error) {
	s.mu.RLock()
	it, ok := s.items[key]
	s.mu.RUnlock()
	if !ok || time.Now().UnixNano() > it.expiry {
		return nil, false, nil
	}
	return it.b, true, nil
}

// Commit stores b under key until expiry.
func (s *Store) Commit(key string, b []byte, expiry time.Time) error {
	s.mu.Lock()
	s.items[key] = item{b: b, expiry: expiry.UnixNano()}
	s.mu.Unlock()
	return nil
}

// Delete removes key.
func (s *Store) Delete(key string) error {
	s.mu.Lock()
	delete(s.items, key)
	s.mu.Unlock()
	return nil
}

// Len returns the number of records, expired ones included until cleanup.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.items)
}

// Cleanup removes expired records now.
func (s *Store) Cleanup() {
	now := time.Now().UnixNano()
	s.mu.Lock()
	for k, it := range s.items {
		if now > it.expiry {
			delete(s.items, k)
		}
	}
	s.mu.Unlock()
}

// Close stops the cleanup goroutine and waits for it.
func (s *Store) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *Store) cleanup(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.Cleanup()
		case <-s.stop:
			return
		}
	}
}
