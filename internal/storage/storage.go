// Package storage is where bff's session state lives at rest: session
// records, the per-subject and per-sid indexes, replay markers and locks.
// It works on opaque names and sealed bytes; the root package's session
// store names the records and seals them.
//
// Three backends implement Backend: Memory (one process), Redis (many
// instances) and Generic (any scs.Store, with a Locker). They differ in how
// they make an ended session stay ended:
//
//   - Memory and Redis swap a record atomically, only while it still holds
//     the revision the writer read (a mutex; a Lua script in Redis). End
//     deletes the record, so no swap can bring it back.
//   - Generic cannot swap atomically. End writes a tombstone before it
//     deletes the record; a swap checks for the tombstone before and after
//     its write, and removes its own write if the tombstone appeared. Either
//     the writer sees the tombstone, or its write came before the delete.
//     The tombstone lives for Generic.TombstoneTTL, which must exceed the
//     longest a writer can take between its read and its check (bff uses
//     twice its longest lock).
package storage

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Result is the outcome of a Swap.
type Result int

// The outcomes of a Swap.
const (
	// Swapped: the record held the expected revision and now holds the
	// new value.
	Swapped Result = iota
	// Gone: the record no longer exists (ended or expired); nothing was
	// written.
	Gone
	// Changed: another write came first; nothing was written.
	Changed
)

// Backend stores session state. All methods are safe for concurrent use.
// Errors are the store's own failures (or the context's); a missing record
// is not an error.
type Backend interface {
	// Get returns the value of name.
	Get(ctx context.Context, name string) (v []byte, found bool, err error)
	// Create stores v under a new name until exp. The name must not exist
	// (session IDs are random; an existing name is an error).
	Create(ctx context.Context, name string, v []byte, exp time.Time) error
	// Swap replaces name's value with v (until exp) if the current value
	// starts with rev.
	Swap(ctx context.Context, name string, rev, v []byte, exp time.Time) (Result, error)
	// End removes name for good: no Swap that read it before succeeds
	// after End returns. A backend with replicas returns (wrapped)
	// ErrNotReplicated when it removed the record but no replica confirmed
	// the removal. A backend shared by instances (Redis) announces the end
	// once for each of announce, as name followed by it, in order (the name
	// alone when there is none); the others ignore announce.
	End(ctx context.Context, name string, announce ...string) error
	// Sync returns once every write made so far is on a replica, or
	// ErrNotReplicated: before saying that a session has ended without
	// ending it now, the caller makes sure an earlier, unconfirmed end
	// cannot be undone by a failover. Backends without replicas return nil.
	Sync(ctx context.Context) error

	// CreateIndexed is Create, and the addition of name to every index set
	// of idx (ordered by score, a sign-in time in microseconds; members
	// scored at most Stale dropped; beyond Limit the lowest-scored other
	// members removed, their records ended as End, and returned; the set
	// expires at Exp unless added to again), done
	// as one step where the backend can make it one (Redis: one script),
	// so that a failure leaves neither a record outside its indexes nor
	// index members without a record (which would count against a limit).
	// It returns the members the indexes evicted, ended.
	CreateIndexed(ctx context.Context, name string, v []byte, exp time.Time, idx []Index) (evicted []string, err error)

	// IndexRemove removes member from the index set name.
	IndexRemove(ctx context.Context, name, member string) error
	// IndexMembers returns the members of name scored above stale.
	IndexMembers(ctx context.Context, name string, stale int64) ([]string, error)

	// FirstUse records name for ttl and reports whether it was new.
	FirstUse(ctx context.Context, name string, ttl time.Duration) (bool, error)
	// Forget removes a FirstUse marker.
	Forget(ctx context.Context, name string) error
}

// Locker serializes work on one name. It is the root package's Locker.
type Locker interface {
	Lock(ctx context.Context, name string, ttl time.Duration) (unlock func(), err error)
}

// Index is one index set a new record joins (see IndexAdd).
type Index struct {
	Set          string
	Score, Stale int64
	Limit        int
	Exp          time.Time
}

// stepBackend is a Backend that adds to an index set on its own, as
// createInSteps needs. Its cost does not depend on the set's size beyond
// the members it drops.
type stepBackend interface {
	Backend
	IndexAdd(ctx context.Context, name, member string, score, stale int64, limit int, exp time.Time) (evicted []string, err error)
}

// createInSteps is CreateIndexed for backends without multi-key
// atomicity: the indexes first (so that a back-channel logout finds the
// session as soon as it exists), then the record; a failure removes the
// index members it added (best effort).
func createInSteps(ctx context.Context, b stepBackend, name string, v []byte, exp time.Time, idx []Index) ([]string, error) {
	var evicted []string
	undo := func() {
		for _, ix := range idx {
			b.IndexRemove(context.WithoutCancel(ctx), ix.Set, name)
		}
	}
	for _, ix := range idx {
		ev, err := b.IndexAdd(ctx, ix.Set, name, ix.Score, ix.Stale, ix.Limit, ix.Exp)
		evicted = append(evicted, ev...)
		if err != nil {
			undo()
			return evicted, err
		}
	}
	if err := b.Create(ctx, name, v, exp); err != nil {
		undo()
		return evicted, err
	}
	return evicted, nil
}

// fresh returns, sorted, the members of an index set scored above stale.
func fresh(set map[string]int64, stale int64) []string {
	var out []string
	for k, sc := range set {
		if sc > stale {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// ErrExists is returned by Create for a name that already exists.
var ErrExists = errors.New("storage: record already exists")

// ErrNotReplicated is returned (wrapped) by an End that removed the record
// but could not confirm that a replica has the removal: a failover to a
// replica that missed it would bring the record back. The caller should
// treat the end as done here (announce it) and report a failure, so that
// it is retried.
var ErrNotReplicated = errors.New("storage: no replica confirmed the write in time")
