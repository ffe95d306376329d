package flight

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// running is the number of calls in flight.
func (g *Group[T]) running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

func TestConcurrentCallersShareOneCall(t *testing.T) {
	var g Group[int]
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = g.Do(context.Background(), "k", func() (int, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
		}()
	}
	for g.running() == 0 {
		runtime.Gosched() // wait for the call to start
	}
	close(release)
	wg.Wait()
	if calls.Load() < 1 {
		t.Fatal("no call")
	}
	for _, r := range results {
		if r != 42 {
			t.Fatalf("a caller got %d", r)
		}
	}
	if g.running() != 0 {
		t.Fatalf("%d calls left in the group", g.running())
	}
}

func TestWaiterContextEndsCallGoesOn(t *testing.T) {
	var g Group[int]
	release, finished := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for g.running() == 0 {
			runtime.Gosched()
		}
		cancel()
	}()
	_, err := g.Do(ctx, "k", func() (int, error) {
		<-release
		close(finished)
		return 1, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(release)
	<-finished // the call completed although its caller left
}

func TestPanicBecomesError(t *testing.T) {
	var g Group[int]
	if _, err := g.Do(context.Background(), "k", func() (int, error) { panic("boom") }); err == nil {
		t.Fatal("no error from a panicking call")
	}
	if g.running() != 0 {
		t.Fatal("the panicking call stayed in the group")
	}
}

func TestDoSharedTellsWhoJoined(t *testing.T) {
	var g Group[int]
	release := make(chan struct{})
	var ran atomic.Int32
	fn := func() (int, error) {
		ran.Add(1)
		<-release
		return 7, nil
	}
	type result struct {
		v      int
		joined bool
	}
	first := make(chan result, 1)
	go func() {
		v, _, joined := g.DoShared(context.Background(), "k", fn)
		first <- result{v, joined}
	}()
	for g.running() == 0 {
		runtime.Gosched() // the first caller's call is running
	}
	const waiters = 9
	out := make(chan result, waiters)
	for range waiters {
		go func() {
			v, _, joined := g.DoShared(context.Background(), "k", fn)
			out <- result{v, joined}
		}()
	}
	// The waiters cannot be observed inside DoShared; a call that is still
	// running when they start is all that makes them join, and release
	// comes only after every one of them has been scheduled at least once.
	for range 100 {
		runtime.Gosched()
	}
	close(release)
	if r := <-first; r.joined || r.v != 7 {
		t.Errorf("the caller that started the call: %+v, want joined=false, 7", r)
	}
	joined := 0
	for range waiters {
		r := <-out
		if r.v != 7 {
			t.Errorf("a waiter got %d", r.v)
		}
		if r.joined {
			joined++
		}
	}
	// Every caller whose fn did not run joined, and the others started
	// their own call: together they account for every caller.
	if got := joined + int(ran.Load()); got != waiters+1 {
		t.Errorf("%d joined + %d calls run = %d, want %d callers", joined, ran.Load(), got, waiters+1)
	}
}
