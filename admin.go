package bff

import (
	"context"
	"errors"
	"time"
)

// endWhere ends the indexed sessions of a sub or sid that match keep (nil:
// all of them), for reason, and returns how many it ended.
func (b *BFF) endWhere(ctx context.Context, kind, value string, keep func(*session) bool, reason endReason) (int, error) {
	// Ending a user's sessions finishes once begun: a half-done "sign out
	// everywhere" would be worse than a late answer.
	ctx = context.WithoutCancel(ctx)
	keys, err := b.store.members(ctx, kind, value)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range keys {
		s, err := b.store.read(ctx, key)
		if err == errNotFound {
			continue
		}
		if err != nil {
			return n, err
		}
		if keep != nil && !keep(s) {
			continue
		}
		last, err := b.store.end(ctx, key, reason)
		if err != nil {
			return n, err
		}
		if last != nil {
			n++
		}
	}
	if n == 0 {
		// Nothing ended now (an end confirmed by a replica confirms every
		// earlier write): an earlier, unconfirmed end must be on a replica
		// before this says that no session is left.
		return 0, b.store.confirm(ctx)
	}
	return n, nil
}

// SessionInfo describes one session of a user, without any token.
type SessionInfo struct {
	Handle   string    // opaque; pass to RevokeSession. Not the cookie value.
	Created  time.Time // sign-in
	LastSeen time.Time // last recorded activity (recorded at most once per TouchInterval)
	Expires  time.Time // when it ends unless used (idle timeout) or at the latest
}

// Sessions lists the live sessions of the user with subject sub.
func (b *BFF) Sessions(ctx context.Context, sub string) ([]SessionInfo, error) {
	keys, err := b.store.members(ctx, "sub", sub)
	if err != nil {
		return nil, err
	}
	var out []SessionInfo
	now := b.cfg.Now().UnixNano()
	for _, key := range keys {
		s, err := b.store.read(ctx, key)
		if err == errNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		if s.rec.Subject != sub || b.store.expired(s, now) {
			continue
		}
		out = append(out, SessionInfo{
			Handle:   key,
			Created:  time.Unix(0, s.rec.Created),
			LastSeen: time.Unix(0, s.rec.LastSeen),
			Expires:  time.Unix(0, b.store.deadline(&s.rec)),
		})
	}
	return out, nil
}

// RevokeSessions ends every session of the user with subject sub, on every
// instance ("sign out everywhere", or locking a user out), and returns how
// many it ended. The provider's sessions are not affected.
func (b *BFF) RevokeSessions(ctx context.Context, sub string) (int, error) {
	n, err := b.endWhere(ctx, "sub", sub, func(s *session) bool { return s.rec.Subject == sub }, endRevoked)
	b.tel.sessionsEnded(ctx, endRevoked, n)
	return n, err
}

// RevokeSession ends the session with the given SessionInfo.Handle.
func (b *BFF) RevokeSession(ctx context.Context, handle string) error {
	if !isRecordName(handle) {
		return badRequest("Unknown session handle.", errors.New("malformed handle"))
	}
	last, err := b.store.end(ctx, handle, endRevoked)
	b.tel.sessionEnded(ctx, endRevoked, last)
	return err
}
