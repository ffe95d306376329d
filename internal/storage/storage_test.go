package storage

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/gobff/bff/internal/redistest"
	"github.com/gomodule/redigo/redis"
)

// Every backend keeps the same contract; each test runs on all three.
func backends(t *testing.T) map[string]Backend {
	mem := NewMemory(time.Minute)
	t.Cleanup(mem.Close)
	plain := NewMemory(time.Minute)
	t.Cleanup(plain.Close)
	rs := redistest.Start(t)
	return map[string]Backend{
		"memory": mem,
		"generic": &Generic{Store: plain, Locker: &MemLocker{}, TombstoneTTL: time.Minute,
			Seal: func(p []byte, _ string) []byte { return p },
			Open: func(v []byte, _ string) ([]byte, error) { return v, nil }},
		"redis": NewRedis(rs.Pool(), "test:", "test:changes"),
	}
}

func forEach(t *testing.T, f func(t *testing.T, b Backend)) {
	for name, b := range backends(t) {
		t.Run(name, func(t *testing.T) { f(t, b) })
	}
}

var (
	ctx  = context.Background()
	hour = time.Now().Add(time.Hour)
)

func get(t *testing.T, b Backend, name string) string {
	t.Helper()
	v, found, err := b.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return "<none>"
	}
	return string(v)
}

func TestSwap(t *testing.T) {
	forEach(t, func(t *testing.T, b Backend) {
		if err := b.Create(ctx, "s:1", []byte("rev1:a"), hour); err != nil {
			t.Fatal(err)
		}
		if err := b.Create(ctx, "s:1", []byte("rev9:x"), hour); !errors.Is(err, ErrExists) {
			t.Fatalf("Create of an existing name = %v, want ErrExists", err)
		}
		steps := []struct {
			rev, v string
			want   Result
			after  string
		}{
			{"rev1", "rev2:b", Swapped, "rev2:b"},
			{"rev1", "rev3:c", Changed, "rev2:b"}, // a writer that read rev1 comes too late
			{"rev2", "rev3:c", Swapped, "rev3:c"},
		}
		for _, s := range steps {
			res, err := b.Swap(ctx, "s:1", []byte(s.rev), []byte(s.v), hour)
			if err != nil || res != s.want || get(t, b, "s:1") != s.after {
				t.Fatalf("Swap(%s → %s) = %v, %v, value %q; want %v, %q", s.rev, s.v, res, err, get(t, b, "s:1"), s.want, s.after)
			}
		}
	})
}

// End is final: a writer holding the last revision cannot bring the
// record back.
func TestEndIsFinal(t *testing.T) {
	forEach(t, func(t *testing.T, b Backend) {
		b.Create(ctx, "s:2", []byte("rev1:a"), hour)
		if err := b.End(ctx, "s:2"); err != nil {
			t.Fatal(err)
		}
		res, err := b.Swap(ctx, "s:2", []byte("rev1"), []byte("rev2:b"), hour)
		if err != nil || res != Gone || get(t, b, "s:2") != "<none>" {
			t.Fatalf("Swap after End = %v, %v, value %q; want Gone and no record", res, err, get(t, b, "s:2"))
		}
	})
}

// On a generic store, an End that lands between a writer's check and its
// write still wins: the writer finds the tombstone after writing and
// removes its own write.
func TestGenericEndDuringSwap(t *testing.T) {
	plain := NewMemory(time.Minute)
	t.Cleanup(plain.Close)
	hooked := &endingStore{Memory: plain}
	g := &Generic{Store: hooked, Locker: &MemLocker{}, TombstoneTTL: time.Minute}
	hooked.onCommit = func(name string) {
		if name == "s:3" {
			hooked.onCommit = nil
			if err := g.End(ctx, "s:3"); err != nil {
				t.Fatal(err)
			}
		}
	}
	g.Create(ctx, "s:3", []byte("rev1:a"), hour)
	hooked.armed = true
	res, err := g.Swap(ctx, "s:3", []byte("rev1"), []byte("rev2:b"), hour)
	if err != nil || res != Gone || get(t, g, "s:3") != "<none>" {
		t.Fatalf("Swap racing End = %v, %v, value %q; want Gone and no record", res, err, get(t, g, "s:3"))
	}
}

// endingStore runs onCommit just before each commit, once armed.
type endingStore struct {
	*Memory
	armed    bool
	onCommit func(name string)
}

func (s *endingStore) Commit(name string, v []byte, exp time.Time) error {
	if f := s.onCommit; s.armed && f != nil {
		f(name)
	}
	return s.Memory.Commit(name, v, exp)
}

func TestIndex(t *testing.T) {
	forEach(t, func(t *testing.T, b Backend) {
		for i, m := range []string{"s:a", "s:b", "s:c"} {
			b.Create(ctx, m, []byte("v"), hour)
			ev, err := b.IndexAdd(ctx, "sub:x", m, int64(100+i), 0, 2, hour)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool][]string{true: {"s:a"}}[i == 2]; !slices.Equal(ev, want) {
				t.Fatalf("add %s: evicted %q, want %q", m, ev, want)
			}
		}
		if got := get(t, b, "s:a"); got != "<none>" {
			t.Fatalf("the evicted session's record = %q, want none", got)
		}
		if m, _ := b.IndexMembers(ctx, "sub:x", 0); !slices.Equal(m, []string{"s:b", "s:c"}) {
			t.Fatalf("members = %q", m)
		}
		if m, _ := b.IndexMembers(ctx, "sub:x", 100); !slices.Equal(m, []string{"s:b", "s:c"}) {
			t.Fatalf("members above 100 = %q", m)
		}
		if m, _ := b.IndexMembers(ctx, "sub:x", 101); !slices.Equal(m, []string{"s:c"}) {
			t.Fatalf("members above 101 (s:b stale) = %q", m)
		}
		// A later add drops stale members.
		if _, err := b.IndexAdd(ctx, "sub:x", "s:d", 200, 150, 2, hour); err != nil {
			t.Fatal(err)
		}
		if m, _ := b.IndexMembers(ctx, "sub:x", math.MinInt64); !slices.Equal(m, []string{"s:d"}) {
			t.Fatalf("after an add with stale 150: %q", m)
		}
		b.IndexRemove(ctx, "sub:x", "s:d")
		if m, _ := b.IndexMembers(ctx, "sub:x", math.MinInt64); len(m) != 0 {
			t.Fatalf("after removing the last member: %q", m)
		}
	})
}

func TestFirstUse(t *testing.T) {
	forEach(t, func(t *testing.T, b Backend) {
		for i, want := range []bool{true, false} {
			if first, err := b.FirstUse(ctx, "state:1", time.Minute); err != nil || first != want {
				t.Fatalf("use %d: %v, %v; want %v", i+1, first, err, want)
			}
		}
		if err := b.Forget(ctx, "state:1"); err != nil {
			t.Fatal(err)
		}
		if first, _ := b.FirstUse(ctx, "state:1", time.Minute); !first {
			t.Fatal("a forgotten marker is not new again")
		}
	})
}

// In Redis every change of a record is announced by the script that makes
// it: a subscriber sees the name of each swapped, ended or evicted record.
func TestRedisAnnouncesChanges(t *testing.T) {
	rs := redistest.Start(t)
	b := NewRedis(rs.Pool(), "test:", "test:changes")
	sub := rs.Pool().Get()
	defer sub.Close()
	psc := redis.PubSubConn{Conn: sub}
	if err := psc.Subscribe("test:changes"); err != nil {
		t.Fatal(err)
	}
	if _, ok := psc.ReceiveWithTimeout(time.Second).(redis.Subscription); !ok {
		t.Fatal("not subscribed")
	}
	next := func() string {
		t.Helper()
		m, ok := psc.ReceiveWithTimeout(2 * time.Second).(redis.Message)
		if !ok {
			t.Fatal("no announcement")
		}
		return string(m.Data)
	}
	b.Create(ctx, "s:1", []byte("rev1:a"), hour)
	b.Create(ctx, "s:2", []byte("rev1:a"), hour)
	if res, _ := b.Swap(ctx, "s:1", []byte("rev1"), []byte("rev2:b"), hour); res != Swapped || next() != "s:1" {
		t.Fatal("a swap was not announced")
	}
	if b.End(ctx, "s:1"); next() != "s:1" {
		t.Fatal("an end was not announced")
	}
	b.IndexAdd(ctx, "sub:y", "s:2", 1, 0, 1, hour)
	b.IndexAdd(ctx, "sub:y", "s:3", 2, 0, 1, hour)
	if next() != "s:2" {
		t.Fatal("an eviction was not announced")
	}
}
