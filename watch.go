package bff

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// endChanged is no end: the record changed (a refresh, activity). The
// reasons of ends are telemetry.go's endReason values: the store's end
// functions take one, announce it with the end (to this instance's
// watchers, and with Redis to every instance), and /auth/events reports it.
// endRevoked also stands for an end whose reason this instance could not
// learn.
const endChanged endReason = ""

// knownReason reports whether r is an end reason (not endChanged).
func knownReason(r endReason) bool {
	switch r {
	case endLogout, endBackchannel, endRevoked, endExpired, endRefreshFailed, endLimit, endReplaced:
		return true
	}
	return false
}

// Messages on the Redis invalidation channel: a store key for a change,
// and, for an end, the key, a NUL and the reason, followed by the key alone
// (which is all that older versions understand: they drop their cached
// copy on it). A message with an unknown reason counts as a change.
const busReasonSep = "\x00"

// busMessages are the messages that announce a change (endChanged) or
// an end of key.
func busMessages(key string, reason endReason) []string {
	if reason == endChanged {
		return []string{key}
	}
	return []string{key + busReasonSep + string(reason), key}
}

// parseBusMessage reads a message of the invalidation channel.
func parseBusMessage(msg string) (key string, reason endReason) {
	key, r, _ := strings.Cut(msg, busReasonSep)
	if reason = endReason(r); !knownReason(reason) {
		reason = endChanged
	}
	return key, reason
}

// watcher is one event stream's subscription to changes of one session.
// signal never blocks: wake holds at most one pending wake-up, and an end's
// reason is kept until the stream reads it.
type watcher struct {
	key   string
	wake  chan struct{}
	mu    sync.Mutex
	ended endReason
}

func (w *watcher) signal(reason endReason) {
	if reason != endChanged {
		w.mu.Lock()
		if w.ended == endChanged {
			w.ended = reason
		}
		w.mu.Unlock()
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the reason of an end announced since the last take, or
// endChanged. (A stream that finds its session still there after an
// announced end, a forged message, goes on listening.)
func (w *watcher) take() endReason {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.ended
	w.ended = endChanged
	return r
}

// watchers is the store's registry of event streams, by store key: every
// change and end the store makes or hears of (invalidate, the bus) wakes
// the streams of that session. It is bounded: at most max streams, at most
// perKey for one session.
type watchers struct {
	mu     sync.RWMutex
	byKey  map[string][]*watcher
	n      int
	max    int
	perKey int
}

func newWatchers(max, perKey int) *watchers {
	return &watchers{byKey: map[string][]*watcher{}, max: max, perKey: perKey}
}

// errTooManyStreams: a bound of the watchers is reached.
var errTooManyStreams = newError(ErrUnavailable, http.StatusTooManyRequests, "too_many_streams",
	"Too many open event streams; close some and try again later.",
	errors.New("event stream bound reached (MaxEventStreams or MaxEventStreamsPerSession)"))

// add registers a stream of key, or returns errTooManyStreams.
func (ws *watchers) add(key string) (*watcher, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.n >= ws.max || len(ws.byKey[key]) >= ws.perKey {
		return nil, errTooManyStreams
	}
	w := &watcher{key: key, wake: make(chan struct{}, 1)}
	ws.byKey[key] = append(ws.byKey[key], w)
	ws.n++
	return w, nil
}

func (ws *watchers) remove(w *watcher) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	list := ws.byKey[w.key]
	for i, x := range list {
		if x == w {
			list = append(list[:i], list[i+1:]...)
			ws.n--
			break
		}
	}
	if len(list) == 0 {
		delete(ws.byKey, w.key)
	} else {
		ws.byKey[w.key] = list
	}
}

// notify wakes the streams of key. It runs on the bus's goroutine for
// every message: a map lookup under a read lock.
func (ws *watchers) notify(key string, reason endReason) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	for _, w := range ws.byKey[key] {
		w.signal(reason)
	}
}

// notifyAll wakes every stream to re-read its session: announcements may
// have been missed.
func (ws *watchers) notifyAll() {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	for _, list := range ws.byKey {
		for _, w := range list {
			w.signal(endChanged)
		}
	}
}

func (ws *watchers) len() int {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	return ws.n
}

// timerFunc starts a one-shot timer of d on the BFF's clock; stop stops
// it. Tests replace it (hooks.newTimer) to move time by hand.
type timerFunc func(d time.Duration) (c <-chan time.Time, stop func() bool)

func realTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// How streams learn of ends they were not told of. With Redis, while the
// invalidation bus is unhealthy (messages may be lost), every stream
// re-reads its session once per busPollInterval, and once more after the
// bus is healthy again (an end announced while it was down). With a custom
// Store, which has no channel between instances, every stream re-reads its
// session once per storePollInterval.
const (
	busPollInterval   = time.Second
	storePollInterval = 5 * time.Second
)

// pollWatchers runs until stop closes: see busPollInterval.
func (st *sessionStore) pollWatchers(stop <-chan struct{}, timer timerFunc, healthy func() bool) {
	interval := busPollInterval
	if healthy == nil {
		interval = storePollInterval
	}
	wasHealthy := true
	for {
		c, cancel := timer(interval)
		select {
		case <-stop:
			cancel()
			return
		case <-c:
		}
		ok := healthy != nil && healthy()
		if (!ok || !wasHealthy) && st.watch.len() > 0 {
			st.watch.notifyAll()
		}
		wasHealthy = ok
	}
}

// heard handles a message of the invalidation bus (another instance's
// change or end, or our own coming back).
func (st *sessionStore) heard(msg string) {
	key, reason := parseBusMessage(msg)
	st.cache.drop(key)
	st.watch.notify(key, reason)
}

// startPolling starts pollWatchers, stopped by close.
func (st *sessionStore) startPolling(timer timerFunc, healthy func() bool) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		st.pollWatchers(stop, timer, healthy)
	}()
	st.closers = append(st.closers, func() { close(stop); <-done })
}
