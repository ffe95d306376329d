package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Timing of event streams. A heartbeat comment every 15 s keeps proxies
// and load balancers with 30-second idle timeouts from closing a quiet
// stream; a write that takes longer than 10 s (a client that stopped
// reading) ends the stream.
const (
	eventsHeartbeat    = 15 * time.Second
	eventsWriteTimeout = 10 * time.Second
	eventsRetry        = time.Second // reconnection delay asked when the session was replaced
)

// eventHub tracks the open event streams, so that CloseEventStreams can end
// them and Close can wait for them.
type eventHub struct {
	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newEventHub() *eventHub { return &eventHub{stop: make(chan struct{})} }

// enter registers a stream, unless the hub is stopped.
func (h *eventHub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.wg.Add(1)
	return true
}

// CloseEventStreams ends every open Prefix+"/events" stream (without an
// event: browsers reconnect, to another instance if this one is going
// away) and answers new ones 503. A stream never ends by itself, and
// http.Server.Shutdown waits for it: register this method with
// http.Server.RegisterOnShutdown. Close calls it too.
func (b *BFF) CloseEventStreams() {
	h := b.events
	h.mu.Lock()
	if !h.stopped {
		h.stopped = true
		close(h.stop)
	}
	h.mu.Unlock()
}

var errStreamsClosed = errUnavailable("The event stream", errors.New("event streams are closed (server shutting down)"))

// handleEvents serves GET Prefix/events: a Server-Sent Events stream of the
// request's session. See README ("Live session events").
func (b *BFF) handleEvents(w http.ResponseWriter, r *http.Request) {
	// Only this origin's pages may hold a stream of the session: a page of
	// the same site (another port of localhost, a subdomain) gets the
	// SameSite=Strict cookie sent, and could use up the session's streams.
	if err := b.checkUpgrade(r); err != nil {
		b.fail(w, r, err)
		return
	}
	s, err := b.liveSession(w, r)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if !b.events.enter() {
		b.fail(w, r, errStreamsClosed)
		return
	}
	defer b.events.wg.Done()
	watch, err := b.store.watch.add(s.key)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	defer b.store.watch.remove(watch)
	// The session may have ended between the read above and add: read it
	// again now that every later end wakes the stream.
	if s, err = b.liveSession(w, r); err != nil {
		b.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	id, _ := cookieValue(r.Header, b.cfg.CookieName)
	st := &stream{b: b, w: w, rc: http.NewResponseController(w), ctx: r.Context(), id: id, s: s, watch: watch}
	if err := st.run(); err != nil && err != errStreamDone {
		b.log.Debug("bff: event stream ended", "err", err)
	}
}

// stream is one open event stream.
type stream struct {
	b      *BFF
	w      http.ResponseWriter
	rc     *http.ResponseController
	ctx    context.Context
	id     string // the session ID, for the cache
	s      *session
	watch  *watcher
	sent   [2]int64 // expiresAt and idleExpiresAt as last sent
	warned int64    // the deadline that "expiring" was sent for
	retry  bool     // the store failed: read it again in a while
}

// errStreamDone ends run without an error to log.
var errStreamDone = errors.New("done")

// run sends the session's events until it ends, the client goes away or
// the hub stops. It reads the store only when the session changed or ended
// (a wake-up of its watcher) and at its deadline: never for a heartbeat.
func (st *stream) run() error {
	timer := st.b.cfg.newTimer
	if err := st.sendSession(); err != nil {
		return err
	}
	heartbeat, stopHeartbeat := timer(eventsHeartbeat)
	var dl <-chan time.Time // the next look at the session: armed below
	stopDL := func() bool { return false }
	defer func() { stopHeartbeat(); stopDL() }()
	var armed int64 = -1
	for {
		now := st.b.cfg.Now().UnixNano()
		at, err := st.schedule(now)
		if err != nil {
			return err
		}
		if at != armed {
			stopDL()
			dl, stopDL = timer(time.Duration(at - now))
			armed = at
		}
		select {
		case <-st.ctx.Done():
			return st.ctx.Err()
		case <-st.b.events.stop:
			return nil
		case <-heartbeat:
			if err := st.write([]byte(": ping\n\n")); err != nil {
				return err
			}
			heartbeat, stopHeartbeat = timer(eventsHeartbeat)
		case <-dl:
			armed = -1
			if now := st.b.cfg.Now().UnixNano(); now >= st.b.store.deadline(&st.s.rec) || st.retry {
				err = st.recheck(now)
			}
		case <-st.watch.wake:
			err = st.recheck(st.b.cfg.Now().UnixNano())
		}
		if err != nil {
			return err
		}
	}
}

// schedule sends "expiring" when it is due and returns when the stream
// must look again: the warning, the deadline, or a retry of the store.
func (st *stream) schedule(now int64) (int64, error) {
	deadline := st.b.store.deadline(&st.s.rec)
	warnAt := deadline - int64(st.b.cfg.ExpiryWarning)
	if st.warned != deadline && now >= warnAt {
		st.warned = deadline
		cause := "idle"
		if deadline == st.s.rec.Expires {
			cause = "lifetime"
		}
		if err := st.send("expiring", expiringEvent{EndsAt: eventTime(deadline), Cause: cause}); err != nil {
			return 0, err
		}
	}
	at := deadline
	if st.warned != deadline {
		at = warnAt
	}
	if st.retry {
		at = min(at, now+int64(busPollInterval))
	}
	return at, nil
}

// recheck reads the session again, after a wake-up (a change or an end
// announced, or a poll) or at its deadline, and sends what changed. An
// ended session ends the stream (errStreamDone).
func (st *stream) recheck(now int64) error {
	reason := st.watch.take()
	ns, err := st.b.store.load(st.ctx, st.id, st.b.cfg.Now())
	switch {
	case err == errNotFound:
		return st.ended(reason, now)
	case err != nil && reason != endChanged:
		return st.ended(reason, now) // announced; the store cannot confirm it now
	case err != nil:
		st.retry = true
		return nil
	}
	st.retry = false
	st.s = ns
	if st.b.store.expired(ns, now) {
		// No request of the session came to end it (nothing touches it
		// here): end it, so that every tab and instance hears of it.
		ctx := context.WithoutCancel(st.ctx)
		last, err := st.b.store.end(ctx, ns.key, endExpired)
		if err != nil {
			st.b.log.WarnContext(ctx, "bff: an expired session could not be ended now; it ends with its next request", "err", err)
		}
		st.b.tel.sessionEnded(ctx, endExpired, last)
		return st.ended(endExpired, now)
	}
	return st.sendSession()
}

// ended sends the end of the session and ends the stream. A session
// replaced by a new sign-in in the same browser has not ended for the
// user: the stream closes without an event, and the browser reconnects with
// its new cookie.
func (st *stream) ended(reason endReason, now int64) error {
	switch {
	case reason == endReplaced:
		if err := st.write(fmt.Appendf(nil, "retry: %d\n\n", eventsRetry.Milliseconds())); err != nil {
			return err
		}
		return errStreamDone
	case reason == endChanged && now >= st.b.store.deadline(&st.s.rec):
		reason = endExpired
	case reason == endChanged:
		// Ended, and the announcement that says why did not reach this
		// instance (an older version, or the bus was down).
		reason = endRevoked
	}
	if err := st.send("ended", endedEvent{Reason: reason}); err != nil {
		return err
	}
	return errStreamDone
}

// sendSession sends the session's deadlines if they changed.
func (st *stream) sendSession() error {
	d := [2]int64{st.s.rec.Expires, st.s.rec.LastSeen + int64(st.b.cfg.IdleTimeout)}
	if d == st.sent {
		return nil
	}
	st.sent = d
	return st.send("session", sessionEvent{ExpiresAt: eventTime(d[0]), IdleExpiresAt: eventTime(d[1])})
}

// The data of the events.
type (
	sessionEvent struct {
		ExpiresAt     string `json:"expiresAt"`     // the end of the session's lifetime
		IdleExpiresAt string `json:"idleExpiresAt"` // the end of the idle timeout, unless used before
	}
	expiringEvent struct {
		EndsAt string `json:"endsAt"`
		Cause  string `json:"cause"` // "idle" or "lifetime"
	}
	endedEvent struct {
		Reason endReason `json:"reason"`
	}
)

// eventTime formats Unix nanoseconds as RFC 3339 UTC with milliseconds.
func eventTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// send writes one event.
func (st *stream) send(event string, data any) error {
	payload, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return st.write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", event, payload))
}

// write writes and flushes, bounded by eventsWriteTimeout (instead of the
// server's WriteTimeout, which would end every stream once it passed).
func (st *stream) write(p []byte) error {
	st.rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout))
	if _, err := st.w.Write(p); err != nil {
		return err
	}
	return st.rc.Flush()
}
