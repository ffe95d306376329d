// Package redisx holds the small Redis primitives bff builds on when several
// instances share one Redis server: a mutual-exclusion lock (Locker), a
// replay cache (FirstUse), a cache-invalidation bus (Bus), and the discovery
// of the master of a Redis Sentinel group (Sentinel).
//
// All network access goes through a *redis.Pool supplied by the caller, so
// timeouts, TLS and AUTH are configured in one place (the pool's Dial func).
// Every function returns Redis and connection errors to the caller instead of
// retrying them: bff fails closed (typically answering 503) when Redis is
// unavailable.
package redisx

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// unlockTimeout bounds the compare-and-delete that releases a lock. It is
// independent of the caller's context so that unlock works after that context
// has been cancelled (the usual case in a deferred unlock).
const unlockTimeout = time.Second

// unlockScript deletes KEYS[1] only if it still holds our token ARGV[1], so a
// holder whose lock expired can never release the lock of the next holder.
var unlockScript = redis.NewScript(1, `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// Locker hands out named locks shared by every process using the same Redis
// server and prefix.
//
// The lock is a single-instance Redis lease (SET NX PX with a random token),
// not a fencing lock: if a holder stalls for longer than its ttl, the lease
// expires and another process may enter the critical section while the first
// is still running. Choose a ttl comfortably larger than the critical section
// and use the lock to avoid duplicate work (for example two instances
// refreshing the same token at once), not as the only guard of an invariant.
type Locker struct {
	pool   *redis.Pool
	prefix string
}

// NewLocker returns a Locker whose lock for name is stored under the key
// prefix+name.
func NewLocker(pool *redis.Pool, prefix string) *Locker {
	return &Locker{pool: pool, prefix: prefix}
}

// Lock acquires the lock name, waiting while another holder has it until ctx
// is done, and returns a func that releases it.
//
// The lock expires by itself after ttl (at millisecond granularity), so a
// crashed holder blocks others for at most ttl. While the lock is held by
// someone else, Lock retries every 10–30 ms (jittered). When ctx is done first
// the error wraps ctx.Err(). A Redis or connection error is returned at once
// without retrying, so the caller can fail the request promptly.
//
// unlock deletes the key only if it still holds this call's random token; it
// is idempotent, safe to call concurrently, and uses its own short timeout so
// it works after ctx is cancelled. If Redis does not answer the unlock (or a
// failed Lock's SET, which may still reach a stalled server), the release is
// retried after 100 ms and 1 s, so that a stall strands no lock for its
// whole ttl; past that, the lease expires after ttl.
func (l *Locker) Lock(ctx context.Context, name string, ttl time.Duration) (unlock func(), err error) {
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("redisx: lock %q: ttl %v is below 1ms", name, ttl)
	}
	key := l.prefix + name
	token := rand.Text() // 128 bits from crypto/rand
	for {
		ok, err := setNX(ctx, l.pool, key, token, ttl)
		if err != nil {
			// The SET may still reach Redis after we gave up on it (a
			// stalled or paused server): then nobody would own the lock
			// for its whole ttl. Delete it if it holds our token, soon
			// and once more later.
			l.releaseLater(key, token, ttl)
			return nil, fmt.Errorf("redisx: lock %q: %w", name, err)
		}
		if ok {
			var once sync.Once
			return func() {
				once.Do(func() {
					if l.release(key, token) != nil {
						// Redis did not answer (stalled, paused): try
						// again rather than strand the lock for its ttl.
						l.releaseLater(key, token, ttl)
					}
				})
			}, nil
		}
		// Held by someone else: back off briefly. The jitter keeps
		// contending waiters from retrying in lockstep.
		t := time.NewTimer(10*time.Millisecond + mrand.N(20*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("redisx: lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// release runs the compare-and-delete script for key and token.
func (l *Locker) release(key, token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	conn, err := l.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = unlockScript.DoContext(ctx, conn, key, token)
	return err
}

// releaseLater releases key if it holds token, soon and once more later
// (within ttl, after which Redis drops it anyway). The compare-and-delete
// never touches a lock someone else has since taken.
func (l *Locker) releaseLater(key, token string, ttl time.Duration) {
	for _, d := range []time.Duration{100 * time.Millisecond, time.Second} {
		if d < ttl {
			time.AfterFunc(d, func() { l.release(key, token) })
		}
	}
}

// FirstUse records name in Redis for ttl and reports whether this call was
// the first to do so (SET name 1 NX PX ttl). It backs replay caches such as
// used state values and logout-token jti claims.
//
// On error, first is false; callers must treat an error as "not known to be
// first" and reject the request rather than accept a possible replay.
func FirstUse(ctx context.Context, pool *redis.Pool, name string, ttl time.Duration) (first bool, err error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("redisx: first use %q: ttl %v is below 1ms", name, ttl)
	}
	first, err = setNX(ctx, pool, name, "1", ttl)
	if err != nil {
		return false, fmt.Errorf("redisx: first use %q: %w", name, err)
	}
	return first, nil
}

// setNX runs SET key value NX PX ttl on a pooled connection and reports
// whether the key was set. If ctx ends during the call, the returned error
// wraps ctx.Err().
func setNX(ctx context.Context, pool *redis.Pool, key, value string, ttl time.Duration) (bool, error) {
	conn, err := pool.GetContext(ctx)
	if err != nil {
		return false, ctxErr(ctx, err)
	}
	defer conn.Close()
	_, err = redis.String(redis.DoContext(conn, ctx, "SET", key, value, "NX", "PX", ttl.Milliseconds()))
	switch {
	case err == nil:
		return true, nil // "OK"
	case errors.Is(err, redis.ErrNil):
		return false, nil // key already exists
	default:
		return false, ctxErr(ctx, err)
	}
}

// ctxErr returns err, also wrapping ctx.Err() when ctx is done, so callers can
// test for context.Canceled or context.DeadlineExceeded.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}
