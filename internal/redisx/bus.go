package redisx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Timing of the Bus. The bounds hold together: a pong is expected every
// pingInterval plus a round trip, healthyWindow tolerates a couple of late
// pongs, and readTimeout declares a connection dead once it has been silent
// for many ping intervals.
const (
	pingInterval  = 25 * time.Millisecond
	healthyWindow = 80 * time.Millisecond
	readTimeout   = 200 * time.Millisecond
	dialTimeout   = time.Second
	minBackoff    = 50 * time.Millisecond
	maxBackoff    = time.Second
)

// Bus carries cache invalidations between bff instances over Redis pub/sub,
// and knows whether it is currently receiving them.
//
// Publish announces that key changed; every Bus subscribed to the channel
// (including the publisher's own) then calls onMessage(key). A background
// goroutine holds a dedicated subscribed connection and sends a PING on it
// every 25 ms, carrying the send time. Redis answers on the same connection,
// and a connection delivers everything in order: PUBLISH appends the message
// to each subscriber's output before it replies to the publisher, and our
// PING sent at time T reaches the server after T. So when the pong of a ping
// sent at T has been received, every message published (Publish returned)
// before T has already been received and its onMessage has returned.
//
// Healthy reports whether the latest pong was for a ping sent within the last
// 80 ms. A local cache that is consulted only while Healthy is true therefore
// never serves an entry whose invalidation was published more than about
// 80 ms (plus the time to process the pong) earlier, whatever happens to the
// network: a stalled, dropped or silently dead connection stops the pongs, and
// Healthy turns false within 80 ms without waiting for any timeout.
//
// On any error the Bus marks itself unhealthy, calls onReset (the caller
// flushes its cache: messages may be lost from now on), and reconnects with
// backoff (50 ms doubling to 1 s). Once the new subscription is confirmed it
// calls onReset again, because messages may have been missed while it was
// down, and only then sends pings that can make it healthy again.
//
// Seq counts onMessage and onReset calls; it is incremented before each call.
// To fill a cache without racing an invalidation, read Seq before reading the
// store, and insert (under the same lock that onMessage/onReset take) only if
// Seq is unchanged.
//
// The guarantee assumes all instances talk to one Redis server. Across a
// failover it holds again once every Bus has subscribed to the new master:
// the old subscription fails (the node died, or Sentinel closed its clients
// as it demoted it), the Bus resets, and it dials through the pool's dial
// function, which with a Sentinel pool reaches the new master. It does not
// hold in Redis Cluster, where PUBLISH is forwarded between nodes
// asynchronously. A Publish that returns an error may
// or may not have been delivered; the caller must not assume either.
//
// onMessage and onReset run synchronously on the Bus goroutine, one at a time;
// they must be quick and must not call Close.
type Bus struct {
	pool      *redis.Pool
	channel   string
	onMessage func(key string)
	onReset   func()
	logger    *slog.Logger

	seq atomic.Uint64
	// base is the origin of the monotonic clock used for ping send times.
	base time.Time
	// lastPong is the send time (nanoseconds since base) of the ping whose
	// pong was received last, or 0 while unhealthy. Only the run goroutine
	// stores it (and Close, after run has exited).
	lastPong atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
}

// NewBus starts a Bus on channel. It is unhealthy until the first
// subscription is confirmed and its first pong has arrived. A nil logger
// discards log output. Call Close to stop it.
func NewBus(pool *redis.Pool, channel string, onMessage func(key string), onReset func(), logger *slog.Logger) *Bus {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bus{
		pool:      pool,
		channel:   channel,
		onMessage: onMessage,
		onReset:   onReset,
		logger:    logger.With("channel", channel),
		base:      time.Now(),
		cancel:    cancel,
		done:      make(chan struct{}),
	}
	go b.run(ctx)
	return b
}

// Healthy reports whether the Bus received, within the last 80 ms, the pong of
// a ping it sent on its current subscription; see the Bus documentation for
// what that guarantees. It is cheap: two atomic/clock reads.
func (b *Bus) Healthy() bool {
	sent := b.lastPong.Load()
	return sent > 0 && b.now()-sent <= int64(healthyWindow)
}

// Lag returns how long ago the ping whose pong arrived last was sent: an
// upper bound on how late this Bus may be in delivering a message (while
// Healthy, at most 80 ms). ok is false while no pong has arrived on the
// current subscription.
func (b *Bus) Lag() (lag time.Duration, ok bool) {
	sent := b.lastPong.Load()
	if sent <= 0 {
		return 0, false
	}
	return time.Duration(b.now() - sent), true
}

// Seq returns the number of onMessage and onReset calls started so far.
func (b *Bus) Seq() uint64 { return b.seq.Load() }

// Close stops the Bus and waits for its goroutines to exit. Afterwards Healthy
// is false. Close may call onReset once more while shutting down. It is
// idempotent.
func (b *Bus) Close() {
	b.cancel()
	<-b.done
	b.lastPong.Store(0)
}

// now returns the monotonic time since b.base in nanoseconds, at least 1.
func (b *Bus) now() int64 { return max(int64(time.Since(b.base)), 1) }

// reset marks the Bus unhealthy and tells the caller to flush its cache.
func (b *Bus) reset() {
	b.lastPong.Store(0)
	b.seq.Add(1)
	b.onReset()
}

// run keeps a subscription alive until ctx is cancelled.
func (b *Bus) run(ctx context.Context) {
	defer close(b.done)
	backoff := minBackoff
	for {
		err := b.session(ctx, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return
		}
		b.logger.Warn("redisx: invalidation bus disconnected", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session dials, subscribes and processes notifications until an error or
// until ctx is cancelled. It calls subscribed once the subscription is
// confirmed. Once connected, it always leaves the Bus unhealthy and reset on
// return, and returns only after its ping goroutine has exited.
func (b *Bus) session(ctx context.Context, subscribed func()) (err error) {
	conn, err := b.dial(ctx)
	if err != nil {
		return err
	}
	// However the session ends, messages may be lost from now on: become
	// unhealthy and flush. (This deferred call runs last, after the
	// connection is closed and the ping goroutine has exited.)
	defer b.reset()
	psc := redis.PubSubConn{Conn: conn}
	// Closing the connection is how Close interrupts a blocked receive.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	if err := b.subscribe(psc); err != nil {
		return err
	}
	subscribed()
	b.logger.Info("redisx: invalidation bus subscribed")
	// Messages published while we were not subscribed are lost: flush again
	// before any pong can make us healthy.
	b.reset()

	var wg sync.WaitGroup
	pingCtx, stopPing := context.WithCancel(ctx)
	wg.Go(func() { b.ping(pingCtx, psc) })
	defer func() {
		stopPing()
		conn.Close() // unblocks a ping stuck writing to a dead peer
		wg.Wait()
	}()

	return b.receive(psc)
}

// subscribe subscribes psc to the channel and waits for the confirmation.
func (b *Bus) subscribe(psc redis.PubSubConn) error {
	if err := psc.Subscribe(b.channel); err != nil {
		return err
	}
	switch v := psc.ReceiveWithTimeout(readTimeout).(type) {
	case redis.Subscription:
		if v.Kind != "subscribe" || v.Channel != b.channel {
			return fmt.Errorf("redisx: unexpected subscription reply %+v", v)
		}
		return nil
	case error:
		return v
	default:
		return fmt.Errorf("redisx: unexpected reply %T to SUBSCRIBE", v)
	}
}

// receive handles messages and pongs until the connection fails.
func (b *Bus) receive(psc redis.PubSubConn) error {
	for {
		switch v := psc.ReceiveWithTimeout(readTimeout).(type) {
		case redis.Message:
			b.seq.Add(1)
			b.onMessage(string(v.Data))
		case redis.Pong:
			sent, err := strconv.ParseInt(v.Data, 10, 64)
			if err != nil || sent <= 0 || sent > b.now() {
				return fmt.Errorf("redisx: unexpected pong %q", v.Data)
			}
			b.lastPong.Store(sent)
		case redis.Subscription:
			// No other (un)subscriptions are ever requested.
			return fmt.Errorf("redisx: unexpected subscription change %+v", v)
		case error:
			return v
		}
	}
}

// ping sends a PING carrying the send time on psc every pingInterval, starting
// at once, until ctx is done. Send errors close the connection so that the
// receiving loop notices at once.
func (b *Bus) ping(ctx context.Context, psc redis.PubSubConn) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		if err := psc.Ping(strconv.FormatInt(b.now(), 10)); err != nil {
			psc.Close()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dial opens a dedicated connection with the pool's dial function; pooled
// connections cannot be used because a subscribed connection is in a special
// state.
func (b *Bus) dial(ctx context.Context) (redis.Conn, error) {
	if b.pool.DialContext != nil {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		return b.pool.DialContext(ctx)
	}
	if b.pool.Dial != nil {
		return b.pool.Dial()
	}
	return nil, errors.New("redisx: pool has no Dial or DialContext func")
}
