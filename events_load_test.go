package bff

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// TestLoadEventStreams holds BFF_EVENTS_STREAMS (2,000) open event streams
// on one instance and measures what they cost it: memory per stream (heap
// and stacks, after a GC, and the process's resident memory) and the CPU
// an idle stream costs over BFF_EVENTS_IDLE (30 s: two heartbeats). The
// instance is a child process (this test binary), so that the figures are
// the server's alone; each stream is a session of its own, signed in
// through the real flow. It runs only when named (-run Load).
func TestLoadEventStreams(t *testing.T) {
	if os.Getenv("BFF_EVENTS_LOAD_CHILD") == "1" {
		serveEventsLoad(t)
		return
	}
	if !loadRequested() {
		t.Skip("load test: run with -run Load or BFF_LOAD=1")
	}
	n := envInt(t, "BFF_EVENTS_STREAMS", 2000)
	idle := 30 * time.Second
	if s := os.Getenv("BFF_EVENTS_IDLE"); s != "" {
		var err error
		if idle, err = time.ParseDuration(s); err != nil {
			t.Fatalf("BFF_EVENTS_IDLE: %v", err)
		}
	}
	child := startEventsLoadChild(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	ids := parallel(t, n, 32, func(int) string { return signInDirect(t, client, child.app) })
	parallel(t, n, 32, func(i int) bool { // read every session once: the cache holds them before the baseline
		if resp := getWithCookie(t, client, child.app+"/auth/session", ids[i]); resp != nil {
			resp.Body.Close()
		}
		return true
	})
	before := child.mem(t)

	streams := &http.Client{Transport: &http.Transport{}} // no timeout: streams last
	var heartbeats atomic.Int64
	var wg sync.WaitGroup
	opened := make(chan error, n)
	var bodies []io.Closer
	var mu sync.Mutex
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", child.app+"/auth/events", nil)
			req.Header.Set("Cookie", "__Host-bff="+ids[i])
			resp, err := streams.Do(req)
			if err != nil || resp.StatusCode != 200 {
				opened <- fmt.Errorf("stream %d: %v %v", i, err, resp)
				return
			}
			mu.Lock()
			bodies = append(bodies, resp.Body)
			mu.Unlock()
			sc := bufio.NewScanner(resp.Body)
			first := true
			for sc.Scan() {
				switch {
				case first && sc.Text() == "event: session":
					first = false
					opened <- nil
				case strings.HasPrefix(sc.Text(), ":"):
					heartbeats.Add(1)
				}
			}
		})
	}
	for range n {
		if err := <-opened; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d streams open in %v (the instance: GOMAXPROCS %d)", n, time.Since(start).Round(time.Millisecond), before.GoMaxProcs)
	after := child.mem(t)
	if after.Streams != n {
		t.Fatalf("the instance holds %d streams, want %d", after.Streams, n)
	}

	cpu0, beats0 := child.cpu(t), heartbeats.Load()
	time.Sleep(idle)
	cpu1, beats := child.cpu(t), heartbeats.Load()-beats0

	heap := float64(after.Heap-before.Heap) / float64(n)
	rss := float64(after.RSS-before.RSS) / float64(n)
	perStream := float64(cpu1-cpu0) / idle.Seconds() / float64(n) // ns of CPU per second of an idle stream
	t.Logf("memory per open stream: %.1f KiB of heap and stacks (after a GC), %.1f KiB resident; %.2f goroutines",
		heap/1024, rss/1024, float64(after.Goroutines-before.Goroutines)/float64(n))
	t.Logf("idle: %d heartbeats in %v; CPU %.1f µs per stream per second (%.2f%% of one core for %d streams; %.0f µs per heartbeat)",
		beats, idle, perStream/1e3, perStream*float64(n)/1e7, n, float64(cpu1-cpu0)/1e3/float64(max(beats, 1)))
	if want := int64(n) * int64(idle/eventsHeartbeat); beats < want {
		t.Errorf("%d heartbeats in %v, want at least %d (one per stream every %v)", beats, idle, want, eventsHeartbeat)
	}
	if heap > 64<<10 {
		t.Errorf("an open stream costs %.1f KiB of heap and stacks, want at most 64 KiB", heap/1024)
	}
	mu.Lock()
	for _, b := range bodies {
		b.Close()
	}
	mu.Unlock()
	wg.Wait()
}

// parallel runs f(0..n-1), workers at a time, and returns the results.
func parallel[T any](t *testing.T, n, workers int, f func(int) T) []T {
	out := make([]T, n)
	parallelFor(n, workers, func(i int) {
		if !t.Failed() {
			out[i] = f(i)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// signInDirect signs a new browser in at app (the provider approves at
// once) and returns its session ID.
func signInDirect(t *testing.T, client *http.Client, app string) string {
	u, cookies := app+"/auth/login?returnTo=/", map[string]string{}
	for range 5 {
		req, _ := http.NewRequest("GET", u, nil)
		for k, v := range cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return ""
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "__Host-bff" {
				return c.Value
			}
			cookies[c.Name] = c.Value
		}
		if u = resp.Header.Get("Location"); u == "" {
			break
		}
		if strings.HasPrefix(u, "/") {
			u = app + u
		}
	}
	t.Error("sign-in ended without a session cookie")
	return ""
}

// getWithCookie runs on parallel's goroutines: it reports a failure with
// t.Error (t.Fatal must not be called there) and returns nil.
func getWithCookie(t *testing.T, client *http.Client, u, id string) *http.Response {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Cookie", "__Host-bff="+id)
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	return resp
}

// eventsLoadChild is the instance under load, a child process.
type eventsLoadChild struct {
	app, debug string
}

// childMem is what the child reports of its memory.
type childMem struct {
	Heap, RSS           uint64 // heap in use plus stacks; resident set
	Goroutines, Streams int
	CPU                 int64 // user plus system CPU time, ns
	GoMaxProcs          int
}

func startEventsLoadChild(t *testing.T) *eventsLoadChild {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadEventStreams$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BFF_EVENTS_LOAD_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var c eventsLoadChild
		if _, err := fmt.Sscanf(sc.Text(), "EVENTS-LOAD %s %s", &c.app, &c.debug); err == nil {
			go io.Copy(io.Discard, stdout)
			return &c
		}
	}
	t.Fatal("the child instance did not start")
	return nil
}

func (c *eventsLoadChild) report(t *testing.T, query string) childMem {
	var m childMem
	if err := json.Unmarshal([]byte(newBrowser(t).Get(c.debug+query).Body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (c *eventsLoadChild) mem(t *testing.T) childMem { return c.report(t, "?gc") }
func (c *eventsLoadChild) cpu(t *testing.T) int64    { return c.report(t, "").CPU }

// serveEventsLoad is the child: an instance on the memory store, with
// bounds above the load, and a report of its memory and CPU; it serves
// until its standard input closes.
func serveEventsLoad(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{AccessTokenTTL: 24 * time.Hour}), func(o *Options) {
		o.MaxSessionsPerUser, o.MaxEventStreams = 1<<20, 1<<20
	})
	debug := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("gc") { // not for CPU readings: a GC is no cost of the streams
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		json.NewEncoder(w).Encode(childMem{
			Heap: ms.HeapInuse + ms.StackInuse, RSS: rss(), Goroutines: runtime.NumGoroutine(),
			Streams: a.bff.store.watch.len(), CPU: ru.Utime.Nano() + ru.Stime.Nano(), GoMaxProcs: runtime.GOMAXPROCS(0),
		})
	}))
	defer debug.Close()
	fmt.Printf("EVENTS-LOAD %s %s\n", a.URL, debug.URL)
	io.Copy(io.Discard, os.Stdin)
	a.bff.CloseEventStreams()
}

// rss is the process's resident set size (Linux), or 0.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
