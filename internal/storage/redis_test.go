package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// With a replica online, End returns once a replica has the deletion, and
// says so when none confirms it: an end that only the primary has would
// come back if a failover promoted the replica.
func TestRedisEndConfirmedByReplica(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	b := NewRedis(primary.Pool(), "test:", "test:changes")
	onReplica := func(name string) bool {
		n, err := redis.Int(replica.Do("EXISTS", "test:"+name))
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	if err := b.Create(ctx, "s:1", []byte("rev1:a"), hour); err != nil {
		t.Fatal(err)
	}
	primary.Replicated(1, time.Second)
	if err := b.End(ctx, "s:1"); err != nil {
		t.Fatalf("End = %v", err)
	}
	if onReplica("s:1") {
		t.Fatal("End returned before the replica had the deletion")
	}

	// A stalled replica confirms nothing: the record is gone from the
	// primary, and End says the end is not safe from a failover.
	if err := b.Create(ctx, "s:2", []byte("rev1:a"), hour); err != nil {
		t.Fatal(err)
	}
	primary.Replicated(1, time.Second)
	replica.Freeze()
	start := time.Now()
	err := b.End(ctx, "s:2")
	waited := time.Since(start)
	replica.Thaw()
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("End with the replica stalled = %v, want ErrNotReplicated", err)
	}
	t.Logf("End gave up after %v", waited)
	if get(t, b, "s:2") != "<none>" {
		t.Fatal("the record is still on the primary")
	}
	// Sync, before saying that no session is left, fails as long as the
	// replica lags, and succeeds once it has caught up.
	replica.Freeze()
	err = b.Sync(ctx)
	replica.Thaw()
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Sync with the replica stalled = %v, want ErrNotReplicated", err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("Sync = %v", err)
	}
	// Thawed, the replica catches up.
	primary.Replicated(1, 5*time.Second)
	if onReplica("s:2") {
		t.Fatal("the replica did not catch up")
	}

	// A replica that is not online (here: gone) is not waited for: its
	// primary cannot know, which is what README says of this case.
	replica.Stop()
	if err := b.Create(ctx, "s:3", []byte("rev1:a"), hour); err != nil {
		t.Fatal(err)
	}
	waitOffline(t, primary)
	if err := b.End(ctx, "s:3"); err != nil {
		t.Fatalf("End without a replica online = %v", err)
	}
}

// waitOffline waits until the primary lists no replica online (ROLE).
func waitOffline(t *testing.T, primary *redistest.Server) {
	testsupport.WaitUntil(t, 5*time.Second, "the stopped replica to leave the primary's list", func() bool {
		v, err := redis.Values(primary.Do("ROLE"))
		if err != nil {
			t.Fatal(err)
		}
		return !hasReplicas(v)
	})
}
