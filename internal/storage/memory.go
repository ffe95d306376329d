package storage

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"sync"
	"time"
)

// Memory is the in-process Backend, and also an scs.Store (Find, Commit,
// Delete without context) so that tests can use it as a custom store.
// Expired entries are invisible at once and removed every cleanup interval;
// Close stops the cleanup goroutine.
type Memory struct {
	mu    sync.RWMutex
	items map[string]item
	index map[string]*memIndex
	stop  chan struct{}
	done  chan struct{}
}

type item struct {
	v   []byte
	exp int64 // Unix nanoseconds
}

// memIndex is one index set: member -> score. Sets are bounded by the
// caller's limit, so scanning one for its oldest member is bounded too.
type memIndex struct {
	m   map[string]int64
	exp int64
}

// NewMemory returns a Memory that removes expired entries every interval.
func NewMemory(interval time.Duration) *Memory {
	s := &Memory{items: map[string]item{}, index: map[string]*memIndex{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.cleanup(interval)
	return s
}

func (s *Memory) live(name string, now int64) ([]byte, bool) {
	it, ok := s.items[name]
	if !ok || now > it.exp {
		return nil, false
	}
	return it.v, true
}

// Get implements Backend.
func (s *Memory) Get(_ context.Context, name string) ([]byte, bool, error) {
	s.mu.RLock()
	v, ok := s.live(name, time.Now().UnixNano())
	s.mu.RUnlock()
	return v, ok, nil
}

// Create implements Backend.
func (s *Memory) Create(_ context.Context, name string, v []byte, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(name, time.Now().UnixNano()); ok {
		return ErrExists
	}
	s.items[name] = item{v: v, exp: exp.UnixNano()}
	return nil
}

// Swap implements Backend.
func (s *Memory) Swap(_ context.Context, name string, rev, v []byte, exp time.Time) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.live(name, time.Now().UnixNano())
	switch {
	case !ok:
		return Gone, nil
	case !bytes.HasPrefix(cur, rev):
		return Changed, nil
	}
	s.items[name] = item{v: v, exp: exp.UnixNano()}
	return Swapped, nil
}

// End implements Backend.
func (s *Memory) End(_ context.Context, name string, _ ...string) error {
	s.mu.Lock()
	delete(s.items, name)
	s.mu.Unlock()
	return nil
}

// IndexAdd adds member to the index set name (see CreateIndexed).
func (s *Memory) IndexAdd(_ context.Context, name, member string, score, stale int64, limit int, exp time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.index[name]
	if ix == nil || time.Now().UnixNano() > ix.exp {
		ix = &memIndex{m: map[string]int64{}}
		s.index[name] = ix
	}
	maps.DeleteFunc(ix.m, func(_ string, sc int64) bool { return sc <= stale })
	ix.m[member] = score
	ix.exp = max(ix.exp, exp.UnixNano())
	var evicted []string
	for len(ix.m) > limit {
		oldest := ""
		for k, sc := range ix.m {
			if oldest == "" || sc < ix.m[oldest] || sc == ix.m[oldest] && k < oldest {
				oldest = k
			}
		}
		delete(ix.m, oldest)
		delete(s.items, oldest)
		evicted = append(evicted, oldest)
	}
	return evicted, nil
}

// CreateIndexed implements Backend. (In memory nothing fails half-way.)
func (s *Memory) CreateIndexed(ctx context.Context, name string, v []byte, exp time.Time, idx []Index) ([]string, error) {
	return createInSteps(ctx, s, name, v, exp, idx)
}

// IndexRemove implements Backend.
func (s *Memory) IndexRemove(_ context.Context, name, member string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix := s.index[name]; ix != nil {
		delete(ix.m, member)
		if len(ix.m) == 0 {
			delete(s.index, name)
		}
	}
	return nil
}

// IndexMembers implements Backend.
func (s *Memory) IndexMembers(_ context.Context, name string, stale int64) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.index[name]
	if ix == nil || time.Now().UnixNano() > ix.exp {
		return nil, nil
	}
	return fresh(ix.m, stale), nil
}

// FirstUse implements Backend.
func (s *Memory) FirstUse(_ context.Context, name string, ttl time.Duration) (bool, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(name, now.UnixNano()); ok {
		return false, nil
	}
	s.items[name] = item{v: []byte{1}, exp: now.Add(ttl).UnixNano()}
	return true, nil
}

// Forget implements Backend.
func (s *Memory) Forget(ctx context.Context, name string) error { return s.End(ctx, name) }

// Sync implements Backend: one process has no replica.
func (s *Memory) Sync(context.Context) error { return nil }

// Find returns the value of name (scs.Store).
func (s *Memory) Find(name string) ([]byte, bool, error) { return s.Get(context.Background(), name) }

// Commit stores v under name until exp (scs.Store).
func (s *Memory) Commit(name string, v []byte, exp time.Time) error {
	s.mu.Lock()
	s.items[name] = item{v: v, exp: exp.UnixNano()}
	s.mu.Unlock()
	return nil
}

// Delete removes name (scs.Store).
func (s *Memory) Delete(name string) error { return s.End(context.Background(), name) }

// Len returns the number of records and index sets, expired ones included
// until cleanup.
func (s *Memory) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.items) + len(s.index)
}

// Live returns the number of records whose names start with prefix and
// that have not expired. It scans every record: for observation, not for
// a request path.
func (s *Memory) Live(prefix string) int {
	now := time.Now().UnixNano()
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for name, it := range s.items {
		if now <= it.exp && strings.HasPrefix(name, prefix) {
			n++
		}
	}
	return n
}

// Close stops the cleanup goroutine and waits for it.
func (s *Memory) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *Memory) cleanup(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			now := time.Now().UnixNano()
			s.mu.Lock()
			maps.DeleteFunc(s.items, func(_ string, it item) bool { return now > it.exp })
			maps.DeleteFunc(s.index, func(_ string, ix *memIndex) bool { return now > ix.exp })
			s.mu.Unlock()
		case <-s.stop:
			return
		}
	}
}

// MemLocker is the in-process Locker. Its locks never expire: a holder in
// this process always releases.
type MemLocker struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
}

// Lock implements Locker.
func (l *MemLocker) Lock(ctx context.Context, name string, _ time.Duration) (func(), error) {
	for {
		l.mu.Lock()
		if l.locks == nil {
			l.locks = map[string]chan struct{}{}
		}
		held, ok := l.locks[name]
		if !ok {
			ch := make(chan struct{})
			l.locks[name] = ch
			l.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					l.mu.Lock()
					delete(l.locks, name)
					l.mu.Unlock()
					close(ch)
				})
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Held returns the number of locks held.
func (l *MemLocker) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}
