package bff

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobff/bff/internal/record"
	"github.com/gobff/bff/internal/redisx"
	"github.com/gobff/bff/internal/seal"
	"github.com/gobff/bff/internal/storage"
)

// sessionStore is the one owner of sessions at rest. Every sign-in,
// refresh, touch and end goes through it, and so do the sub/sid index, the
// replay markers and the locks; no other file knows how a record is named.
// It seals records, keeps the per-instance cache honest (with Redis,
// through the invalidation bus), and puts a circuit breaker in front of the
// backend.
//
// The rule that keeps an ended session ended: a record is only rewritten by
// a conditional write naming the revision it was read at (swap), and ending
// removes the record for good (storage.Backend.End), so a write that read
// the record before it ended fails, on any instance, whatever became of the
// locks. The locks only keep writers from doing the same work twice.
type sessionStore struct {
	be      storage.Backend
	locker  Locker
	sealer  *seal.Sealer
	cache   *cache      // nil: no cache
	bus     *redisx.Bus // nil: no announcements from other instances to follow
	watch   *watchers   // the event streams to wake on a change or end (watch.go)
	breaker breaker
	log     *slog.Logger
	now     func() time.Time
	idle    time.Duration
	maxLife time.Duration
	limit   int // sessions per subject (and per sid)
	closers []func()
	tel     *telemetry
}

// Lock lifetimes. The refresh lock's is the longest (lockTTL in refresh.go);
// a generic store keeps tombstones for twice that.
const (
	endLockWait = 3 * time.Second // an end waits this long for a refresh in flight
	endLockTTL  = 5 * time.Second
)

// In Redis, every key bff writes starts with redisPrefix, and changes are
// announced on redisChannel.
const (
	redisPrefix  = "bff:"
	redisChannel = "bff:invalidate"
)

// newSessionStore picks the backend: Redis, a custom scs.Store, or memory.
func newSessionStore(cfg *config, sealer *seal.Sealer, longestLock time.Duration) *sessionStore {
	st := &sessionStore{locker: cfg.Locker, sealer: sealer, log: cfg.Logger, now: cfg.Now,
		idle: cfg.IdleTimeout, maxLife: cfg.MaxLifetime, limit: cfg.MaxSessionsPerUser,
		watch: newWatchers(cfg.MaxEventStreams, cfg.MaxEventStreamsPerSession)}
	switch {
	case cfg.Redis != nil:
		rb := storage.NewRedis(cfg.Redis, redisPrefix, redisChannel)
		rb.EvictedSuffixes = busMessages("", endLimit)
		st.be = rb
		if st.locker == nil {
			st.locker = redisx.NewLocker(cfg.Redis, redisPrefix)
		}
		if !cfg.DisableSessionCache {
			st.cache = newCache(sessionCacheMaxAge, cfg.SessionCacheBytes, nil, nil)
		}
		// The bus runs without the cache too: event streams hear ends
		// from other instances on it.
		st.bus = redisx.NewBus(cfg.Redis, redisChannel, st.heard, st.cache.reset, cfg.Logger)
		if st.cache != nil {
			st.cache.trusted, st.cache.seqFn = st.bus.Healthy, st.bus.Seq
		}
		st.closers = append(st.closers, st.bus.Close)
		st.startPolling(cfg.newTimer, st.bus.Healthy)
		return st
	case cfg.memoryStore:
		ms := storage.NewMemory(time.Minute)
		st.be = ms
		st.closers = append(st.closers, ms.Close)
		if !cfg.DisableSessionCache {
			st.cache = newCache(0, cfg.SessionCacheBytes, nil, nil)
		}
	}
	if st.locker == nil {
		st.locker = &storage.MemLocker{}
	}
	if cfg.Store != nil {
		st.startPolling(cfg.newTimer, nil)
		st.be = &storage.Generic{Store: cfg.Store, Locker: st.locker, TombstoneTTL: 2 * longestLock,
			Seal: func(p []byte, name string) []byte { return sealer.Seal(nil, seal.PurposeIndex, p, []byte(name)) },
			Open: func(v []byte, name string) ([]byte, error) {
				return sealer.Open(nil, seal.PurposeIndex, v, []byte(name))
			},
		}
	}
	return st
}

func (st *sessionStore) close() {
	for _, c := range st.closers {
		c()
	}
}

// recordName names the record of a session ID. The name is the session's
// key everywhere (the cache, the index, SessionInfo.Handle).
func recordName(id string) string { return seal.IDName("s", id) }

// isRecordName reports whether s has the form of a record name.
func isRecordName(s string) bool { return strings.HasPrefix(s, "s:") }

// deadline is when a session ends unless used again: the earlier of its
// absolute end and its idle timeout (Unix nanoseconds).
func (st *sessionStore) deadline(rec *record.Session) int64 {
	return min(rec.Expires, rec.LastSeen+int64(st.idle))
}

func (st *sessionStore) expired(s *session, now int64) bool { return now >= st.deadline(&s.rec) }

// Errors of conditional writes.
var (
	errEnded   = errors.New("the session has ended")
	errChanged = errors.New("the session record was changed by another write")
)

// load returns the session for id: from the cache when it may be trusted,
// otherwise from the store. errNotFound for no session; an *Error (503) when
// the store fails.
func (st *sessionStore) load(ctx context.Context, id string, now time.Time) (*session, error) {
	if st.cache != nil {
		if s := st.cache.get(id, now); s != nil {
			st.tel.cacheLookup(cacheHit)
			return s, nil
		}
		st.tel.cacheLookup(cacheMissOrUntrusted(st.cache.trusted))
	}
	seq := st.cache.seq()
	s, err := st.read(ctx, recordName(id))
	if err != nil {
		return nil, err
	}
	st.cache.put(id, s, seq, now)
	return s, nil
}

// errNotFound: no such session (or it does not open).
var errNotFound = errors.New("session not found")

// read reads and opens one session record, bypassing the cache.
func (st *sessionStore) read(ctx context.Context, key string) (*session, error) {
	if err := st.breaker.allow(); err != nil {
		return nil, err
	}
	raw, found, err := st.be.Get(ctx, key)
	if err := st.breaker.done(ctx, err); err != nil {
		return nil, err
	}
	if !found {
		return nil, errNotFound
	}
	plain, err := st.sealer.Open(nil, seal.PurposeSession, raw, []byte(key))
	if err != nil {
		st.log.WarnContext(ctx, "bff: session record does not open; treating as no session (was a secret key removed?)", "store_key", key)
		return nil, errNotFound
	}
	var rec record.Session
	if err := rec.Decode(plain); err != nil {
		st.log.WarnContext(ctx, "bff: session record does not decode; treating as no session", "store_key", key)
		return nil, errNotFound
	}
	s := newSession(key, rec)
	s.rev = bytes.Clone(seal.Revision(raw))
	return s, nil
}

// sealed seals s's record and sets its revision.
func (st *sessionStore) sealed(s *session) []byte {
	v := st.sealer.Seal(nil, seal.PurposeSession, s.rec.Append(nil), []byte(s.key))
	s.rev = bytes.Clone(seal.Revision(v))
	return v
}

// create stores a new session and indexes it. Signing in beyond
// MaxSessionsPerUser ends the user's oldest sessions. replaces is the store
// key of the session that s replaces ("" for none): the browser's previous
// session, which the caller ends right after. It does not count against
// the limit of the index sets it shares with s, so that a sign-in that
// replaces it (a step-up) ends no other session of the user.
func (st *sessionStore) create(ctx context.Context, s *session, replaces string) error {
	v := st.sealed(s)
	var prev *session
	if replaces != "" {
		prev, _ = st.read(ctx, replaces) // nil when gone or unreadable: no allowance
	}
	if err := st.breaker.allow(); err != nil {
		return err
	}
	evicted, err := st.be.CreateIndexed(ctx, s.key, v, time.Unix(0, st.deadline(&s.rec)), st.indexes(s, prev))
	for _, key := range evicted {
		// The backend ended it (and with Redis announced it).
		st.cache.drop(key)
		st.watch.notify(key, endLimit)
		st.tel.sessionsEnded(ctx, endLimit, 1)
		st.log.InfoContext(ctx, "bff: session limit reached; ended the oldest session")
	}
	return st.breaker.done(ctx, err)
}

// swap replaces cur's record with ns, only if the record is still the one
// cur was read from: errEnded when it is gone, errChanged when another
// write came first. The caller holds the session's lock.
func (st *sessionStore) swap(ctx context.Context, cur, ns *session) error {
	v := st.sealed(ns)
	if err := st.breaker.allow(); err != nil {
		return err
	}
	res, err := st.be.Swap(ctx, ns.key, cur.rev, v, time.Unix(0, st.deadline(&ns.rec)))
	if err := st.breaker.done(ctx, err); err != nil {
		return err
	}
	switch res {
	case storage.Gone:
		return errEnded
	case storage.Changed:
		return errChanged
	}
	st.invalidate(ns.key, endChanged)
	return nil
}

// lock takes the session's lock (see Locker).
func (st *sessionStore) lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	return st.locker.Lock(ctx, "lock:"+key, ttl)
}

// end ends the session under key for good, for reason, and returns its last
// record (nil if it had already ended). It waits up to endLockWait for a
// refresh in flight, so that the record it returns holds that refresh's
// tokens (the ones to revoke); past that it ends the session anyway.
func (st *sessionStore) end(ctx context.Context, key string, reason endReason) (*session, error) {
	// An end that has begun finishes, whether or not its caller waits.
	ctx = context.WithoutCancel(ctx)
	lctx, cancel := context.WithTimeout(ctx, endLockWait)
	unlock, err := st.lock(lctx, key, endLockTTL)
	cancel()
	if err != nil {
		st.log.DebugContext(ctx, "bff: ending a session without its lock", "err", err)
	} else {
		defer unlock()
	}
	cur, err := st.read(ctx, key)
	if err == errNotFound {
		return nil, st.confirm(ctx) // ended by someone else, perhaps unconfirmed
	}
	if err != nil {
		return nil, err
	}
	return cur, st.endLocked(ctx, cur, reason)
}

// endLocked ends cur, whose lock the caller holds (or gave up on).
func (st *sessionStore) endLocked(ctx context.Context, cur *session, reason endReason) error {
	if err := st.breaker.allow(); err != nil {
		return err
	}
	err := st.be.End(ctx, cur.key, busMessages("", reason)...)
	if err != nil && !errors.Is(err, storage.ErrNotReplicated) {
		return st.breaker.done(ctx, err)
	}
	// Ended here, perhaps not yet on a replica: then the caller gets a 503,
	// and its retry answers only once a replica has the end (confirm).
	st.invalidate(cur.key, reason)
	st.indexRemove(ctx, cur)
	return st.breaker.done(ctx, err)
}

// confirm returns once every write so far is on a replica (when the store
// has replicas), else a 503. Call it before saying a session has ended
// without ending it now: an earlier end that no replica confirmed (the
// first try of a retried sign-out) must not come back in a failover.
func (st *sessionStore) confirm(ctx context.Context) error {
	if err := st.breaker.allow(); err != nil {
		return err
	}
	return st.breaker.done(ctx, st.be.Sync(ctx))
}

// indexKinds are the index sets a session is in.
func indexKinds(rec *record.Session) [2][2]string {
	return [2][2]string{{"sub", rec.Subject}, {"sid", rec.SID}}
}

// indexes are the sub and sid sets s joins. Beyond the limit the oldest
// sessions end; a set that prev, the session s replaces, is in too allows
// one more (its session ends right after).
func (st *sessionStore) indexes(s, prev *session) []storage.Index {
	// Microseconds: sign-ins in one millisecond stay in order, and a
	// float64 score (Redis) holds them exactly.
	score := s.rec.Created / int64(time.Microsecond)
	stale := st.now().Add(-st.maxLife).UnixMicro()
	exp := time.Unix(0, s.rec.Created).Add(st.maxLife)
	var replaced [2][2]string
	if prev != nil {
		replaced = indexKinds(&prev.rec)
	}
	var out []storage.Index
	for i, kv := range indexKinds(&s.rec) {
		if kv[1] == "" {
			continue
		}
		limit := st.limit
		if replaced[i] == kv {
			limit++
		}
		out = append(out, storage.Index{Set: st.sealer.Name(kv[0], kv[1]), Score: score, Stale: stale, Limit: limit, Exp: exp})
	}
	return out
}

// indexRemove removes s from its index sets, under every secret key's name
// (it may have been added before a rotation). A failure is logged: stale
// entries are skipped by readers and expire with the set.
func (st *sessionStore) indexRemove(ctx context.Context, s *session) {
	for _, kv := range indexKinds(&s.rec) {
		if kv[1] == "" {
			continue
		}
		for _, name := range st.sealer.Names(kv[0], kv[1]) {
			if err := st.be.IndexRemove(ctx, name, s.key); err != nil {
				st.log.DebugContext(ctx, "bff: index entry not removed (it expires with its set)", "err", err)
			}
		}
	}
}

// members returns the session keys indexed under kind ("sub" or "sid") and
// value, under every secret key's name.
func (st *sessionStore) members(ctx context.Context, kind, value string) ([]string, error) {
	if value == "" {
		return nil, nil
	}
	stale := st.now().Add(-st.maxLife).UnixMicro()
	var keys []string
	for _, name := range st.sealer.Names(kind, value) {
		if err := st.breaker.allow(); err != nil {
			return nil, err
		}
		m, err := st.be.IndexMembers(ctx, name, stale)
		if err := st.breaker.done(ctx, err); err != nil {
			return nil, err
		}
		keys = append(keys, m...)
	}
	return keys, nil
}

// replayKind names what a replay marker stands for.
type replayKind string

const (
	replayState  replayKind = "state"  // a sign-in's state, used at the callback
	replayLogout replayKind = "logout" // an RP-initiated logout's state, used at the logout callback
	replayJTI    replayKind = "jti"    // a logout token's issuer and jti
)

// firstUse records a replay marker for value for ttl, and reports whether
// it is new. Markers hold no data: their names are keyed hashes.
func (st *sessionStore) firstUse(ctx context.Context, kind replayKind, value string, ttl time.Duration) (bool, error) {
	if err := st.breaker.allow(); err != nil {
		return false, err
	}
	first, err := st.be.FirstUse(ctx, st.sealer.Name(string(kind), value), ttl)
	return first, st.breaker.done(ctx, err)
}

// forget removes a replay marker, past the breaker: it undoes a marker just
// written.
func (st *sessionStore) forget(ctx context.Context, kind replayKind, value string) error {
	return st.be.Forget(ctx, st.sealer.Name(string(kind), value))
}

// invalidate drops key from this instance's cache and wakes its event
// streams. Other instances learn of the change (or the end, with its
// reason) from the backend: in Redis, the script that wrote it announced it
// in the same step; the memory store and a custom store have no other
// instance with a cache (a custom store's streams poll, pollWatchers).
func (st *sessionStore) invalidate(key string, reason endReason) {
	st.cache.drop(key)
	st.watch.notify(key, reason)
}

// breaker is the circuit breaker in front of the store: after
// breakerThreshold consecutive store failures, calls answer 503 at once
// for breakerOpen instead of piling up on a dead connection. Then calls try
// the store again: one success closes the breaker, one more failure opens
// it again at once. A call that failed because its own context ended (the
// client went away, a deadline of the caller's) is not the store's failure
// and is not counted.
type breaker struct {
	fails     atomic.Int64
	openUntil atomic.Int64 // Unix nanoseconds
	errors    atomic.Int64 // failures counted, ever (bff.store.errors)
}

const (
	breakerThreshold = 5
	breakerOpen      = 250 * time.Millisecond
)

var errBreakerOpen = errUnavailable("The session store", errors.New("circuit open after consecutive store failures"))

func (b *breaker) allow() error {
	if until := b.openUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return errBreakerOpen
	}
	return nil
}

// done records a call's outcome and turns a failure into a 503.
func (b *breaker) done(ctx context.Context, err error) error {
	if err == nil {
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		return nil
	}
	if ctx.Err() == nil {
		b.errors.Add(1)
		if b.fails.Add(1) >= breakerThreshold {
			b.openUntil.Store(time.Now().Add(breakerOpen).UnixNano())
		}
	}
	return errUnavailable("The session store", err)
}
