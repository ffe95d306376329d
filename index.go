package bff

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/gobff/bff/internal/seal"
)

// The index maps a subject ("sub") and a provider session ID ("sid") to the
// store keys of their sessions, for back-channel logout and RevokeSessions.
// It lives in the same store as the sessions, as sealed records named with
// a keyed hash (no subject in clear text), updated under the name's lock,
// and it needs no KEYS or iteration. Each entry carries its session's
// deadline: expired entries are dropped whenever the record is touched, and
// the record itself expires with its last session.

// indexRecord: store key of a session -> its deadline (Unix nanoseconds).
type indexRecord map[string]int64

// index adds s to (add) or removes it from its sub and sid index records.
func (b *BFF) index(ctx context.Context, s *session, add bool) error {
	deadline := min(s.rec.Expires, s.rec.LastSeen+int64(b.cfg.IdleTimeout))
	for _, kv := range [][2]string{{"sub", s.rec.Subject}, {"sid", s.rec.SID}} {
		if kv[1] == "" {
			continue
		}
		// An entry is added under the first key's name, and removed under
		// every key's name: it may have been added before a rotation.
		names := b.sealer.Names(kv[0], kv[1])
		if add {
			names = names[:1]
		}
		for _, name := range names {
			err := b.updateIndex(ctx, name, func(m indexRecord) {
				if add {
					// The deadline moves with the idle timeout; keep the
					// entry until the longest the session can live.
					m[s.key] = max(deadline, s.rec.Expires)
				} else {
					delete(m, s.key)
				}
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *BFF) updateIndex(ctx context.Context, name string, change func(indexRecord)) error {
	unlock, err := b.locker.Lock(ctx, "lock:"+name, 5*time.Second)
	if err != nil {
		return errUnavailable("The session lock", err)
	}
	defer unlock()
	m, err := b.readIndex(ctx, name)
	if err != nil {
		return err
	}
	change(m)
	b.pruneIndex(m)
	if len(m) == 0 {
		return b.storeDelete(ctx, name)
	}
	plain, _ := json.Marshal(m)
	last := slices.Max(slices.Collect(maps.Values(m)))
	return b.storeCommit(ctx, name, b.sealer.Seal(nil, seal.PurposeIndex, plain, []byte(name)), time.Unix(0, last))
}

func (b *BFF) readIndex(ctx context.Context, name string) (indexRecord, error) {
	m := indexRecord{}
	raw, found, err := b.storeFind(ctx, name)
	if err != nil || !found {
		return m, err
	}
	plain, err := b.sealer.Open(nil, seal.PurposeIndex, raw, []byte(name))
	if err != nil || json.Unmarshal(plain, &m) != nil {
		b.log.Warn("bff: index record does not open; ignoring it", "store_key", name)
		return indexRecord{}, nil
	}
	return m, nil
}

func (b *BFF) pruneIndex(m indexRecord) {
	now := b.cfg.Now().UnixNano()
	for k, dl := range m {
		if dl <= now {
			delete(m, k)
		}
	}
}

// indexKeys returns the session keys indexed under kind/value, looking
// under the name of every secret key (rotation).
func (b *BFF) indexKeys(ctx context.Context, kind, value string) ([]string, error) {
	if value == "" {
		return nil, nil
	}
	var keys []string
	for _, name := range b.sealer.Names(kind, value) {
		m, err := b.readIndex(ctx, name)
		if err != nil {
			return nil, err
		}
		b.pruneIndex(m)
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys, nil
}
