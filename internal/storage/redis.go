package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/redisx"
)

// Redis is the Backend for instances that share one Redis server. Every
// key is prefix + name. Reads go through scs/redisstore; writes are Lua
// scripts, each one round trip and atomic on the server. A script that
// changes or removes a session record also announces it (PUBLISH of the
// record's name on the channel) in the same step, so no change can be
// stored without its announcement.
type Redis struct {
	pool    *redis.Pool
	prefix  string
	channel string // where changes are announced (cache invalidation)
	scs     *redisstore.RedisStore

	// EvictedSuffixes are the messages that announce a record
	// CreateIndexed evicted: one per suffix, the record's name followed by the suffix, in
	// order. Default: the name alone.
	EvictedSuffixes []string
}

// NewRedis returns the Backend on pool, with every key under prefix,
// announcing changed and removed records on channel.
func NewRedis(pool *redis.Pool, prefix, channel string) *Redis {
	return &Redis{pool: pool, prefix: prefix, channel: channel, scs: redisstore.NewWithPrefix(pool, prefix)}
}

// swapScript: KEYS[1] record; ARGV rev, value, expiry (Unix ms), channel,
// name. Returns the Result.
var swapScript = redis.NewScript(1, `
local cur = redis.call("GET", KEYS[1])
if not cur then return 1 end
if string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 2 end
redis.call("SET", KEYS[1], ARGV[2], "PXAT", ARGV[3])
redis.call("PUBLISH", ARGV[4], ARGV[5])
return 0
`)

// endScript: KEYS[1] record; ARGV channel, name, then the suffixes of the
// announcements.
var endScript = redis.NewScript(1, `
redis.call("DEL", KEYS[1])
for i = 3, #ARGV do
	redis.call("PUBLISH", ARGV[1], ARGV[2] .. ARGV[i])
end
return 0
`)

// Get implements Backend.
func (r *Redis) Get(_ context.Context, name string) ([]byte, bool, error) {
	return r.scs.Find(name)
}

// Create implements Backend.
func (r *Redis) Create(ctx context.Context, name string, v []byte, exp time.Time) error {
	reply, err := r.do(ctx, func(c redis.Conn) (any, error) {
		return redis.DoContext(c, ctx, "SET", r.prefix+name, v, "NX", "PXAT", exp.UnixMilli())
	})
	if err == nil && reply == nil {
		return ErrExists
	}
	return err
}

// Swap implements Backend.
func (r *Redis) Swap(ctx context.Context, name string, rev, v []byte, exp time.Time) (Result, error) {
	n, err := redis.Int(r.do(ctx, func(c redis.Conn) (any, error) {
		return swapScript.DoContext(ctx, c, r.prefix+name, rev, v, exp.UnixMilli(), r.channel, name)
	}))
	if err != nil {
		return 0, err
	}
	return Result(n), nil
}

// replicaAckTimeout bounds how long End and Sync wait for a replica to
// confirm a write.
const replicaAckTimeout = time.Second

// End implements Backend: the record is deleted (and Swap needs it), and
// the end announced, in one script; a replica confirms the deletion (see
// confirmed).
func (r *Redis) End(ctx context.Context, name string, announce ...string) error {
	return r.confirmed(ctx, func(c redis.Conn) error {
		return endScript.Send(c, append([]any{r.prefix + name, r.channel, name}, suffixes(announce)...)...)
	})
}

// suffixes are the script arguments of announcement suffixes: the name
// alone when there are none.
func suffixes(s []string) []any {
	if len(s) == 0 {
		return []any{""}
	}
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Sync implements Backend with a marker write confirmed by a replica: the
// replication stream is ordered, so every earlier write is there too.
func (r *Redis) Sync(ctx context.Context) error {
	return r.confirmed(ctx, func(c redis.Conn) error {
		return c.Send("SET", r.prefix+"sync", "1", "PX", time.Minute.Milliseconds())
	})
}

// confirmed sends a write and, when the server has replicas online (ROLE,
// sent with the write: no extra round trip), waits until one of them has it
// (WAIT, at most replicaAckTimeout); it returns ErrNotReplicated if none
// confirms it. A Sentinel promotes the replica with the most data, so a
// write that one replica confirmed survives a failover. Without the ACL
// permission for ROLE it cannot tell, and does not wait.
func (r *Redis) confirmed(ctx context.Context, send func(redis.Conn) error) error {
	_, err := r.do(ctx, func(c redis.Conn) (any, error) {
		if err := send(c); err != nil {
			return nil, err
		}
		if err := c.Send("ROLE"); err != nil {
			return nil, err
		}
		replies, err := redis.Values(redis.DoContext(c, ctx, ""))
		if err != nil {
			return nil, err
		}
		if err, ok := replies[0].(redis.Error); ok {
			return nil, err
		}
		if !hasReplicas(replies[1]) {
			return nil, nil
		}
		n, err := redis.Int(redis.DoWithTimeout(c, replicaAckTimeout+time.Second, "WAIT", 1, replicaAckTimeout.Milliseconds()))
		if err == nil && n < 1 {
			err = ErrNotReplicated
		}
		return nil, err
	})
	return err
}

// hasReplicas reports whether a ROLE reply is a master's with replicas
// online.
func hasReplicas(role any) bool {
	v, err := redis.Values(role, nil)
	if err != nil || len(v) < 3 {
		return false
	}
	replicas, _ := redis.Values(v[2], nil)
	return len(replicas) > 0
}

// createScript: KEYS[1] record, KEYS[2..] index sets; ARGV value, expiry
// (Unix ms), key prefix, channel, the record's name, then per set: score,
// stale, limit, expiry; then the suffixes of the evictions' announcements.
// It stores the record (unless it exists) and adds it to every set,
// evicting (deleting and announcing) the lowest-scored other members beyond
// each limit; it returns the evicted.
var createScript = redis.NewScript(-1, `
if not redis.call("SET", KEYS[1], ARGV[1], "NX", "PXAT", ARGV[2]) then
	return redis.error_reply("EXISTS record exists")
end
local out, sfx = {}, 6 + (#KEYS - 1) * 4
for i = 2, #KEYS do
	local k, b = KEYS[i], 5 + (i - 2) * 4
	redis.call("ZREMRANGEBYSCORE", k, "-inf", ARGV[b + 2])
	redis.call("ZADD", k, ARGV[b + 1], ARGV[5])
	redis.call("PEXPIREAT", k, ARGV[b + 4], "GT")
	redis.call("PEXPIREAT", k, ARGV[b + 4], "NX")
	local over = redis.call("ZCARD", k) - tonumber(ARGV[b + 3])
	if over > 0 then
		for _, m in ipairs(redis.call("ZRANGE", k, 0, over)) do
			if over == 0 then break end
			if m ~= ARGV[5] then
				redis.call("ZREM", k, m)
				redis.call("DEL", ARGV[3] .. m)
				for j = sfx, #ARGV do
					redis.call("PUBLISH", ARGV[4], m .. ARGV[j])
				end
				out[#out + 1] = m
				over = over - 1
			end
		end
	end
end
return out
`)

// CreateIndexed implements Backend: one script, so that a failure (Redis
// unreachable, a failover) leaves nothing half-done.
func (r *Redis) CreateIndexed(ctx context.Context, name string, v []byte, exp time.Time, idx []Index) ([]string, error) {
	args := []any{r.prefix + name}
	for _, ix := range idx {
		args = append(args, r.prefix+ix.Set)
	}
	nkeys := len(args)
	args = append(args, v, exp.UnixMilli(), r.prefix, r.channel, name)
	for _, ix := range idx {
		args = append(args, ix.Score, ix.Stale, ix.Limit, ix.Exp.UnixMilli())
	}
	args = append(args, suffixes(r.EvictedSuffixes)...)
	evicted, err := redis.Strings(r.do(ctx, func(c redis.Conn) (any, error) {
		return createScript.DoContext(ctx, c, append([]any{nkeys}, args...)...)
	}))
	if err != nil && strings.HasPrefix(err.Error(), "EXISTS") {
		return nil, ErrExists
	}
	return evicted, err
}

// IndexRemove implements Backend.
func (r *Redis) IndexRemove(ctx context.Context, name, member string) error {
	_, err := r.do(ctx, func(c redis.Conn) (any, error) {
		return redis.DoContext(c, ctx, "ZREM", r.prefix+name, member)
	})
	return err
}

// IndexMembers implements Backend.
func (r *Redis) IndexMembers(ctx context.Context, name string, stale int64) ([]string, error) {
	return redis.Strings(r.do(ctx, func(c redis.Conn) (any, error) {
		return redis.DoContext(c, ctx, "ZRANGE", r.prefix+name, fmt.Sprintf("(%d", stale), "+inf", "BYSCORE")
	}))
}

// FirstUse implements Backend.
func (r *Redis) FirstUse(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return redisx.FirstUse(ctx, r.pool, r.prefix+name, ttl)
}

// Forget implements Backend.
func (r *Redis) Forget(ctx context.Context, name string) error {
	_, err := r.do(ctx, func(c redis.Conn) (any, error) {
		return redis.DoContext(c, ctx, "DEL", r.prefix+name)
	})
	return err
}

// do runs f on a pooled connection.
func (r *Redis) do(ctx context.Context, f func(redis.Conn) (any, error)) (any, error) {
	c, err := r.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	reply, err := f(c)
	if errors.Is(err, redis.ErrNil) {
		return nil, nil
	}
	return reply, err
}
