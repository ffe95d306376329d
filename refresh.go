package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/gobff/bff/internal/record"
)

// needsRefresh: the access token expires within the skew. The skew is at
// most half the token's lifetime, so a skew longer than the lifetime does
// not refresh on every request. A token without expiry is never refreshed.
func (b *BFF) needsRefresh(s *session, now int64) bool {
	exp := s.rec.AccessExpiry
	if exp == 0 {
		return false
	}
	skew := int64(b.cfg.RefreshSkew)
	if s.rec.AccessIssued != 0 {
		if half := (exp - s.rec.AccessIssued) / 2; skew > half {
			skew = half
		}
	}
	return now >= exp-skew
}

// RefreshEvent describes one refresh attempt, for Options.OnRefresh. It
// holds no token.
type RefreshEvent struct {
	Subject  string         // the user's "sub" claim
	Outcome  RefreshOutcome // how the attempt ended
	Err      error          // nil for OutcomeRefreshed and OutcomeReused
	Duration time.Duration  // how long the attempt took, waits for the lock included
}

// RefreshOutcome says how a refresh attempt ended (RefreshEvent.Outcome).
// Its string is the "outcome" attribute of the refresh's log line.
type RefreshOutcome string

// The refresh outcomes.
const (
	// OutcomeRefreshed: the provider gave new tokens.
	OutcomeRefreshed RefreshOutcome = "refreshed"
	// OutcomeReused: another request, here or on another instance, had
	// just refreshed the session; its tokens serve this request.
	OutcomeReused RefreshOutcome = "reused"
	// OutcomeEnded: the session ended (the provider refused the refresh
	// token, the refreshed ID token was bad, the session had ended
	// meanwhile, or the access token expired without a refresh token).
	// Err wraps ErrUnauthenticated.
	OutcomeEnded RefreshOutcome = "ended"
	// OutcomeFailed: the provider, the lock or the store failed; the
	// session is kept and a later request tries again. Err wraps
	// ErrUnavailable.
	OutcomeFailed RefreshOutcome = "failed"
)

// refresh gets a fresh access token for s. Within this process, concurrent
// requests of one session share one refresh; across processes, the
// session's store lock serializes them, and the record is re-read under
// the lock so that a request that lost the race uses the winner's tokens.
//
// Failure policy: a dead refresh token (invalid_grant) or a refreshed ID
// token that fails verification or changes the subject ends the session
// (401). A transient failure (provider down, timeout, 5xx, lock or store
// unavailable) keeps the session: the current access token is used while it
// is still valid, otherwise 503 with Retry-After.
func (b *BFF) refresh(ctx context.Context, s *session, now int64) (*session, error) {
	if now < s.rec.AccessExpiry && b.retryAt.active(s.key, now) {
		// A refresh of this session failed moments ago and the token
		// still works: use it, instead of making every request wait on a
		// failing provider.
		return s, nil
	}
	ns, err, joined := b.flights.DoShared(ctx, "refresh:"+s.key, func() (*session, error) {
		return b.refreshLocked(context.WithoutCancel(ctx), s.key, "")
	})
	b.tel.refreshShared(ctx, joined)
	if err == nil {
		return ns, nil
	}
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
		return nil, err
	}
	b.retryAt.set(s.key, now+int64(refreshRetryDelay))
	if now < s.rec.AccessExpiry {
		b.log.WarnContext(ctx, "bff: token refresh failed; using the current access token until it expires", b.subject(s.rec.Subject), "err", err)
		return s, nil
	}
	if e == nil {
		e = errUnavailable("The identity provider", err)
	}
	return nil, e
}

// lockTTL bounds how long a crashed holder blocks a session's refresh.
func (b *BFF) lockTTL() time.Duration { return 2*b.cfg.RefreshTimeout + 5*time.Second }

// refreshRejected refreshes s's access token after an upstream API
// rejected it (401), whatever its expiry says: it shares refreshLocked's
// lock and re-read, so if the stored session already holds another token
// (another request or instance has refreshed), that token is returned
// without a new grant. Concurrent calls for one session share one refresh.
// The caller compares the result's token with the rejected one: the same
// token means no new token could be had (no refresh token). Errors are
// refreshLocked's: 401 when the session ended, else 503.
func (b *BFF) refreshRejected(ctx context.Context, s *session) (*session, error) {
	ns, err, joined := b.flights.DoShared(ctx, "refresh-rejected:"+s.key, func() (*session, error) {
		return b.refreshLocked(context.WithoutCancel(ctx), s.key, s.rec.AccessToken)
	})
	b.tel.refreshShared(ctx, joined)
	if _, ok := err.(*Error); err != nil && !ok {
		err = errUnavailable("The token refresh", err) // the caller's context ended
	}
	return ns, err
}

// refreshLocked refreshes the session's access token if it needs it, or if
// the stored token is rejected (an upstream refused it; "" for none).
func (b *BFF) refreshLocked(ctx context.Context, key, rejected string) (ns *session, err error) {
	start := time.Now()
	var sub string
	outcome := OutcomeRefreshed
	ctx, span := b.tel.startSpan(ctx, "bff.refresh", trace.SpanKindInternal)
	defer func() { b.reportRefresh(ctx, span, sub, outcome, err, time.Since(start)) }()

	lockCtx, cancel := context.WithTimeout(ctx, b.cfg.RefreshTimeout)
	defer cancel()
	unlock, err := b.store.lock(lockCtx, key, b.lockTTL())
	if err != nil {
		return nil, errUnavailable("The session lock", err)
	}
	defer unlock()

	cur, err := b.store.read(ctx, key)
	if err == errNotFound {
		return nil, errUnauth(errors.New("session ended during refresh"))
	}
	if err != nil {
		return nil, err
	}
	sub = cur.rec.Subject
	now := b.cfg.Now()
	if !b.needsRefresh(cur, now.UnixNano()) && (rejected == "" || cur.rec.AccessToken != rejected) {
		outcome = OutcomeReused
		return cur, nil
	}
	prov := b.prov.Load()
	if prov == nil {
		return nil, errNotReady
	}
	if cur.rec.RefreshToken == "" {
		if now.UnixNano() < cur.rec.AccessExpiry {
			outcome = OutcomeReused
			return cur, nil
		}
		return nil, b.endAfterRefresh(ctx, cur, errors.New("access token expired and there is no refresh token"))
	}
	rec, err := b.grant(ctx, prov, cur, now)
	if err != nil {
		return nil, err
	}
	return b.storeRefreshed(ctx, prov, cur, rec)
}

// reportRefresh logs a refresh attempt, records it (ending its span) and
// calls Options.OnRefresh.
func (b *BFF) reportRefresh(ctx context.Context, span trace.Span, sub string, outcome RefreshOutcome, err error, d time.Duration) {
	level := slog.LevelDebug
	if err != nil {
		outcome, level = OutcomeFailed, slog.LevelWarn
		var e *Error
		if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
			outcome, level = OutcomeEnded, slog.LevelInfo
		}
	}
	b.tel.refreshDone(ctx, span, outcome, err, d)
	b.log.Log(ctx, level, "bff: token refresh", b.subject(sub), "outcome", string(outcome), "duration", d, "err", err)
	if b.cfg.OnRefresh == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			b.log.ErrorContext(ctx, "bff: OnRefresh panicked", "panic", p)
		}
	}()
	b.cfg.OnRefresh(ctx, RefreshEvent{Subject: sub, Outcome: outcome, Err: err, Duration: d})
}

// endAfterRefresh ends cur (its lock held) for a refresh that showed the
// session is over, and returns the 401 that says why.
func (b *BFF) endAfterRefresh(ctx context.Context, cur *session, why error) error {
	if err := b.store.endLocked(ctx, cur, endRefreshFailed); err != nil {
		b.log.WarnContext(ctx, "bff: a session whose refresh failed for good could not be ended now; it cannot refresh again", "err", err)
	} else {
		b.tel.sessionsEnded(ctx, endRefreshFailed, 1)
	}
	return errUnauth(why)
}

// grant runs the refresh-token grant for cur and returns the record with
// the new tokens. A dead refresh token or a bad refreshed ID token ends the
// session (401); anything else is transient (503).
func (b *BFF) grant(ctx context.Context, prov *provider, cur *session, now time.Time) (record.Session, error) {
	callCtx, cancel := context.WithTimeout(ctx, b.cfg.RefreshTimeout)
	defer cancel()
	callCtx = b.clientContext(callCtx)
	tok, err := prov.oauth.TokenSource(b.tokenContext(callCtx, prov), &oauth2.Token{RefreshToken: cur.rec.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return record.Session{}, b.endAfterRefresh(ctx, cur, errInvalidGrant)
		}
		return record.Session{}, errUnavailable("The identity provider", scrub(err))
	}
	rec := cur.rec
	rec.Rev++
	rec.AccessToken = tok.AccessToken
	rec.TokenType = tok.Type()
	rec.AccessIssued = now.UnixNano()
	rec.AccessExpiry = accessExpiry(tok, now)
	rec.RefreshToken = tok.RefreshToken
	// The session ends with the current refresh token (if the provider
	// says when) and at MaxLifetime after sign-in. A rotated token's
	// deadline replaces the old one: providers such as Keycloak slide it
	// with every refresh. Without a new deadline, the old one stays.
	if dl := refreshDeadline(tok, now); dl != 1<<63-1 || rec.RefreshToken != cur.rec.RefreshToken {
		rec.Expires = min(rec.Created+int64(b.cfg.MaxLifetime), dl)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return rec, nil
	}
	idt, err := b.verifyIDToken(callCtx, prov, raw, tok.AccessToken)
	switch {
	case errors.Is(err, errKeysUnavailable):
		// The grant itself succeeded, and the provider may have rotated
		// the refresh token: keep the new tokens (losing them would end
		// the session) and the old, verified ID token.
		b.log.WarnContext(ctx, "bff: refreshed ID token not verified now (key set unavailable); keeping the previous one", b.subject(rec.Subject), "err", err)
	case err == nil && idt.Subject != cur.rec.Subject:
		err = errors.New("refreshed ID token has a different subject")
		fallthrough
	case err != nil:
		return record.Session{}, b.endAfterRefresh(ctx, cur, fmt.Errorf("refreshed ID token: %w", err))
	default:
		rec.IDToken, rec.IDTokenExpiry = raw, idt.Expiry.UnixNano()
	}
	return rec, nil
}

// storeRefreshed writes the refreshed record over cur, conditionally: a
// session that ended meanwhile stays ended (and the refresh token it was
// just given is revoked). The provider may have rotated the refresh token,
// and losing the new one would end the session at its next refresh, so a
// failed write is retried after a pause (past the breaker's window, if it
// opened).
func (b *BFF) storeRefreshed(ctx context.Context, prov *provider, cur *session, rec record.Session) (*session, error) {
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 && !errors.Is(err, errChanged) {
			pause := 50 * time.Millisecond
			if b.store.breaker.allow() != nil {
				pause = breakerOpen + 10*time.Millisecond
			}
			time.Sleep(pause)
		}
		ns := newSession(cur.key, rec)
		if err = b.store.swap(ctx, cur, ns); err == nil {
			return ns, nil
		}
		if errors.Is(err, errChanged) {
			// Another write came first (a lock's lease ran out under us):
			// put the new tokens on top of it.
			latest, rerr := b.store.read(ctx, cur.key)
			if rerr == errNotFound {
				err = errEnded
			} else if rerr == nil {
				cur, rec = latest, withTokens(latest.rec, rec)
			}
		}
		if errors.Is(err, errEnded) {
			if prov.revocationURL != "" && rec.RefreshToken != "" && rec.RefreshToken != cur.rec.RefreshToken {
				if rerr := b.revoke(ctx, prov, rec.RefreshToken); rerr != nil {
					b.log.WarnContext(ctx, "bff: the refresh token of a session that ended during its refresh could not be revoked", "err", rerr)
				}
			}
			return nil, errUnauth(errors.New("session ended during refresh"))
		}
	}
	b.log.ErrorContext(ctx, "bff: refreshed tokens could not be stored; the session may end at its next refresh", b.subject(rec.Subject), "err", err)
	return newSession(cur.key, rec), nil
}

// withTokens is base with the tokens and deadlines of refreshed.
func withTokens(base, refreshed record.Session) record.Session {
	out := base
	out.Rev = base.Rev + 1
	out.LastSeen = max(base.LastSeen, refreshed.LastSeen)
	out.Expires = refreshed.Expires
	out.AccessToken, out.TokenType = refreshed.AccessToken, refreshed.TokenType
	out.AccessIssued, out.AccessExpiry = refreshed.AccessIssued, refreshed.AccessExpiry
	out.RefreshToken = refreshed.RefreshToken
	out.IDToken, out.IDTokenExpiry = refreshed.IDToken, refreshed.IDTokenExpiry
	return out
}

// refreshDeadline is when the refresh token expires, if the provider says
// (refresh_expires_in, as Keycloak does); otherwise never.
func refreshDeadline(tok *oauth2.Token, now time.Time) int64 {
	var secs int64
	switch v := tok.Extra("refresh_expires_in").(type) {
	case float64:
		secs = int64(v)
	case string:
		secs, _ = strconv.ParseInt(v, 10, 64)
	}
	if secs <= 0 {
		return 1<<63 - 1
	}
	return now.Add(time.Duration(secs) * time.Second).UnixNano()
}

// accessExpiry is when the access token expires (0: never), on the BFF's
// clock: x/oauth2 computes tok.Expiry from expires_in with time.Now, which
// disagrees with an injected Options.Now.
func accessExpiry(tok *oauth2.Token, now time.Time) int64 {
	switch {
	case tok.ExpiresIn > 0:
		return now.Add(time.Duration(tok.ExpiresIn) * time.Second).UnixNano()
	case !tok.Expiry.IsZero():
		return tok.Expiry.UnixNano()
	}
	return 0
}

// touch records activity for the idle timeout, at most once per
// TouchInterval, under the session's lock on a re-read record, with a
// conditional write (so that it never writes back stale tokens, nor a
// session that has ended). A failure keeps the session as it is.
func (b *BFF) touch(ctx context.Context, s *session, now int64) *session {
	ns, err := b.flights.Do(ctx, "touch:"+s.key, func() (*session, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		// The touch holds the lock for at most its 1 s context: a short
		// ttl, so that a lock stranded by a stalled store blocks little.
		unlock, err := b.store.lock(ctx, s.key, 3*time.Second)
		if err != nil {
			return nil, err
		}
		defer unlock()
		cur, err := b.store.read(ctx, s.key)
		if err != nil {
			return nil, err
		}
		if now-cur.rec.LastSeen < int64(b.cfg.TouchInterval) {
			return cur, nil
		}
		rec := cur.rec
		rec.Rev++
		rec.LastSeen = now
		ns := newSession(s.key, rec)
		return ns, b.store.swap(ctx, cur, ns)
	})
	if err != nil {
		b.log.DebugContext(ctx, "bff: session activity not recorded", "err", err)
		return s
	}
	return ns
}

// refreshRetryDelay: after a transient refresh failure, a session whose
// access token is still valid uses it for this long before trying again.
const refreshRetryDelay = 5 * time.Second

// retryTimes remembers, per session, when a failed refresh may be retried.
// It holds only sessions whose refresh failed recently: expired entries are
// swept whenever it grows past a bound.
type retryTimes struct {
	mu sync.Mutex
	at map[string]int64
}

func (r *retryTimes) active(key string, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.at[key]
	if ok && now >= at {
		delete(r.at, key)
		return false
	}
	return ok
}

func (r *retryTimes) set(key string, at int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[string]int64{}
	}
	if len(r.at) >= 4096 {
		now := at - int64(refreshRetryDelay)
		for k, v := range r.at {
			if v <= now {
				delete(r.at, k)
			}
		}
	}
	r.at[key] = at
}
