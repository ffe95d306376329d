package storage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Generic is the Backend on any scs.Store (its CtxStore methods when it
// has them), with a Locker for what a plain store cannot do atomically.
//
// Ending is final through tombstones (see the package documentation). An
// index set is one record, rewritten under the set's lock; its size is
// bounded by the caller's limit, so each rewrite is bounded too. Replay
// markers are records written under their name's lock.
type Generic struct {
	Store  scs.Store
	Locker Locker
	// TombstoneTTL is how long an ended record's tombstone is kept.
	TombstoneTTL time.Duration
	// Seal and Open protect index records at rest (they name sessions of
	// one subject); ad is the record's name.
	Seal func(plain []byte, name string) []byte
	Open func(sealed []byte, name string) ([]byte, error)
}

func tombstone(name string) string { return "ended:" + name }

// lockTTL bounds how long a crashed holder of an index or replay lock
// blocks others.
const lockTTL = 5 * time.Second

// Get implements Backend.
func (g *Generic) Get(ctx context.Context, name string) ([]byte, bool, error) {
	if cs, ok := g.Store.(scs.CtxStore); ok {
		return cs.FindCtx(ctx, name)
	}
	return g.Store.Find(name)
}

func (g *Generic) commit(ctx context.Context, name string, v []byte, exp time.Time) error {
	if cs, ok := g.Store.(scs.CtxStore); ok {
		return cs.CommitCtx(ctx, name, v, exp)
	}
	return g.Store.Commit(name, v, exp)
}

func (g *Generic) delete(ctx context.Context, name string) error {
	if cs, ok := g.Store.(scs.CtxStore); ok {
		return cs.DeleteCtx(ctx, name)
	}
	return g.Store.Delete(name)
}

// Create implements Backend. Session names are random and never reused, so
// the check-then-write needs no lock.
func (g *Generic) Create(ctx context.Context, name string, v []byte, exp time.Time) error {
	if _, found, err := g.Get(ctx, name); err != nil || found {
		if found {
			return ErrExists
		}
		return err
	}
	return g.commit(ctx, name, v, exp)
}

// Swap implements Backend: the caller holds name's lock, which keeps
// writers of one record apart; the tombstone, checked before and after the
// write, keeps an End final even when that lock's lease expired.
func (g *Generic) Swap(ctx context.Context, name string, rev, v []byte, exp time.Time) (Result, error) {
	if _, ended, err := g.Get(ctx, tombstone(name)); err != nil || ended {
		return Gone, err
	}
	cur, found, err := g.Get(ctx, name)
	switch {
	case err != nil:
		return 0, err
	case !found:
		return Gone, nil
	case !bytes.HasPrefix(cur, rev):
		return Changed, nil
	}
	if err := g.commit(ctx, name, v, exp); err != nil {
		return 0, err
	}
	// An End that started after the check above has written its tombstone
	// by the time it deletes: if it is there now, undo this write (the
	// End's delete may have come before it). A failed check also undoes
	// it: better a session lost than one that outlives its logout.
	_, ended, err := g.Get(context.WithoutCancel(ctx), tombstone(name))
	if err != nil || ended {
		if derr := g.delete(context.WithoutCancel(ctx), name); err == nil {
			err = derr
		}
		return Gone, err
	}
	return Swapped, nil
}

// End implements Backend: tombstone first, then the delete.
func (g *Generic) End(ctx context.Context, name string, _ ...string) error {
	if err := g.commit(ctx, tombstone(name), []byte{1}, time.Now().Add(g.TombstoneTTL)); err != nil {
		return err
	}
	return g.delete(ctx, name)
}

// IndexAdd adds member to the index set name (see CreateIndexed).
func (g *Generic) IndexAdd(ctx context.Context, name, member string, score, stale int64, limit int, exp time.Time) ([]string, error) {
	var evicted []string
	err := g.updateIndex(ctx, name, exp, func(m map[string]int64) {
		evicted = evicted[:0]
		m[member] = score
		maps.DeleteFunc(m, func(_ string, sc int64) bool { return sc <= stale })
		for len(m) > limit {
			oldest := slices.MinFunc(slices.Collect(maps.Keys(m)), func(a, b string) int {
				return cmp.Or(cmp.Compare(m[a], m[b]), strings.Compare(a, b))
			})
			delete(m, oldest)
			evicted = append(evicted, oldest)
		}
	})
	if err != nil {
		return nil, err
	}
	for _, member := range evicted {
		if err := g.End(ctx, member); err != nil {
			return evicted, err
		}
	}
	return evicted, nil
}

// CreateIndexed implements Backend: in steps, a plain store has no
// multi-key atomicity.
func (g *Generic) CreateIndexed(ctx context.Context, name string, v []byte, exp time.Time, idx []Index) ([]string, error) {
	return createInSteps(ctx, g, name, v, exp, idx)
}

// IndexRemove implements Backend.
func (g *Generic) IndexRemove(ctx context.Context, name, member string) error {
	return g.updateIndex(ctx, name, time.Time{}, func(m map[string]int64) { delete(m, member) })
}

// IndexMembers implements Backend.
func (g *Generic) IndexMembers(ctx context.Context, name string, stale int64) ([]string, error) {
	ix, err := g.readIndex(ctx, name)
	if err != nil {
		return nil, err
	}
	return fresh(ix.Members, stale), nil
}

// genericIndex is an index set at rest.
type genericIndex struct {
	Members map[string]int64 `json:"m"`
	Expires int64            `json:"e"` // Unix milliseconds
}

func (g *Generic) readIndex(ctx context.Context, name string) (genericIndex, error) {
	ix := genericIndex{Members: map[string]int64{}}
	raw, found, err := g.Get(ctx, name)
	if err != nil || !found {
		return ix, err
	}
	plain, err := g.Open(raw, name)
	if err != nil || json.Unmarshal(plain, &ix) != nil || ix.Members == nil {
		// Unreadable (a removed secret key): start afresh; the sessions
		// it named end by their own deadlines.
		return genericIndex{Members: map[string]int64{}}, nil
	}
	return ix, nil
}

// updateIndex changes the index set name under its lock. exp, when later,
// moves the set's expiry.
func (g *Generic) updateIndex(ctx context.Context, name string, exp time.Time, change func(map[string]int64)) error {
	unlock, err := g.Locker.Lock(ctx, "lock:"+name, lockTTL)
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := g.readIndex(ctx, name)
	if err != nil {
		return err
	}
	change(ix.Members)
	ix.Expires = max(ix.Expires, exp.UnixMilli())
	if len(ix.Members) == 0 {
		return g.delete(ctx, name)
	}
	plain, _ := json.Marshal(ix)
	return g.commit(ctx, name, g.Seal(plain, name), time.UnixMilli(ix.Expires))
}

// FirstUse implements Backend.
func (g *Generic) FirstUse(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	unlock, err := g.Locker.Lock(ctx, "lock:"+name, lockTTL)
	if err != nil {
		return false, err
	}
	defer unlock()
	_, found, err := g.Get(ctx, name)
	if err != nil || found {
		return false, err
	}
	return true, g.commit(ctx, name, []byte{1}, time.Now().Add(ttl))
}

// Forget implements Backend.
func (g *Generic) Forget(ctx context.Context, name string) error { return g.delete(ctx, name) }

// Sync implements Backend: how a custom store replicates is its own affair.
func (g *Generic) Sync(context.Context) error { return nil }
