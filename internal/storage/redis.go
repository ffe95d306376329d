package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/redisx"
)

// Redis is the Backend for instances that share one Redis server. Every
// key is prefix + name. Reads and deletes go through scs/redisstore; the
// conditional writes and the indexes are Lua scripts, each one round trip
// and atomic on the server.
type Redis struct {
	pool    *redis.Pool
	prefix  string
	channel string // where an index's evictions are announced (cache invalidation)
	scs     *redisstore.RedisStore

	// EvictedSuffixes are the messages that announce a record IndexAdd
	// ended: one per suffix, the record's name followed by the suffix, in
	// order. Default: the name alone.
	EvictedSuffixes []string
}

// NewRedis returns the Backend on pool, with every key under prefix. The
// records IndexAdd ends are announced on channel, as the invalidation bus
// announces every other change.
func NewRedis(pool *redis.Pool, prefix, channel string) *Redis {
	return &Redis{pool: pool, prefix: prefix, channel: channel, scs: redisstore.NewWithPrefix(pool, prefix)}
}

// swapScript: KEYS[1] record; ARGV rev, value, expiry (Unix ms). Returns
// the Result.
var swapScript = redis.NewScript(1, `
local cur = redis.call("GET", KEYS[1])
if not cur then return 1 end
if string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 2 end
redis.call("SET", KEYS[1], ARGV[2], "PXAT", ARGV[3])
return 0
`)

// indexAddScript: KEYS[1] index set; ARGV member, score, stale, limit,
// expiry (Unix ms), key prefix, channel, then the suffixes of the
// announcements. Returns the evicted members, whose records it deletes and
// announces.
var indexAddScript = redis.NewScript(1, `
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", ARGV[3])
redis.call("ZADD", KEYS[1], ARGV[2], ARGV[1])
redis.call("PEXPIREAT", KEYS[1], ARGV[5], "GT")
redis.call("PEXPIREAT", KEYS[1], ARGV[5], "NX")
local over = redis.call("ZCARD", KEYS[1]) - tonumber(ARGV[4])
local out = {}
if over > 0 then
	local popped = redis.call("ZPOPMIN", KEYS[1], over)
	for i = 1, #popped, 2 do
		out[#out + 1] = popped[i]
		redis.call("DEL", ARGV[6] .. popped[i])
		for j = 8, #ARGV do
			redis.call("PUBLISH", ARGV[7], popped[i] .. ARGV[j])
		end
	end
end
return out
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
		return swapScript.DoContext(ctx, c, r.prefix+name, rev, v, exp.UnixMilli())
	}))
	if err != nil {
		return 0, err
	}
	return Result(n), nil
}

// End implements Backend: the record is deleted, and Swap needs it.
func (r *Redis) End(_ context.Context, name string) error { return r.scs.Delete(name) }

// IndexAdd implements Backend.
func (r *Redis) IndexAdd(ctx context.Context, name, member string, score, stale int64, limit int, exp time.Time) ([]string, error) {
	return redis.Strings(r.do(ctx, func(c redis.Conn) (any, error) {
		args := []any{r.prefix + name, member, score, stale, limit, exp.UnixMilli(), r.prefix, r.channel}
		suffixes := r.EvictedSuffixes
		if len(suffixes) == 0 {
			suffixes = []string{""}
		}
		for _, s := range suffixes {
			args = append(args, s)
		}
		return indexAddScript.DoContext(ctx, c, args...)
	}))
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
