// Command loadtest measures the throughput of RequireSession side by side
// with a bare handler and with hand-written scs/v2 session checks, on
// loopback only, bounded in time.
//
//	go -C tools run ./loadtest [-rounds 3] [-duration 5s] [-conns 32]
//
// Every variant serves the same handler (GET /api/me answering a small
// fixed JSON) behind a different guard:
//
//	bare             the handler alone
//	bff-memory       bff.RequireSession, default in-memory store
//	bff-redis        bff.RequireSession on Redis, with the session cache
//	bff-redis-nocache  the same with Options.DisableSessionCache
//	scs-memory       scs/v2 LoadAndSave + GetString("user") != "" (memstore)
//	scs-redis        the same on scs/redisstore
//
// Each variant runs in its own child process (this binary with -serve),
// pinned to CPU 0 with taskset when there are at least two CPUs; the load
// generator (wrk -t1, or this binary with -gen when wrk is missing) is
// pinned to CPU 1; redis-server, started by this program with persistence
// off on a free loopback port, is pinned to the server's CPU. Sessions are
// created by signing in through the real flow against an in-process
// oidctest provider (scs: one Put). The variants run interleaved, round
// after round, and the program prints a markdown table of the median
// requests/second, the ratio to bare, the server's CPU time per request
// and, for the Redis variants, Redis commands per request (INFO
// commandstats).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/oidctest"
)

var allVariants = []string{"bare", "bff-memory", "bff-redis", "bff-redis-nocache", "scs-memory", "scs-redis"}

func main() {
	var (
		serve     = flag.String("serve", "", "child mode: serve this variant and print its address")
		issuer    = flag.String("issuer", "", "child mode: the provider's issuer URL")
		redisAddr = flag.String("redis", "", "child mode: the Redis address")
		keyHex    = flag.String("key", "", "child mode: the secret key, hex")
		profDir   = flag.String("profile-dir", "", "write each server's CPU profile to DIR/VARIANT.cpu")

		gen     = flag.String("gen", "", "child mode: Go load generator against this URL")
		cookie  = flag.String("cookie", "", "Cookie header for -gen")
		rounds  = flag.Int("rounds", 5, "rounds of all variants")
		dur     = flag.Duration("duration", 5*time.Second, "duration of each run")
		warmup  = flag.Duration("warmup", 3*time.Second, "unmeasured warm-up run of each variant before the rounds")
		conns   = flag.Int("conns", 32, "concurrent connections")
		only    = flag.String("variants", strings.Join(allVariants, ","), "comma-separated variants to run")
		loader  = flag.String("loader", "auto", "load generator: wrk, go, or auto (wrk if installed)")
		srvCPU  = flag.String("server-cpu", "0", "CPU list for the servers and redis-server (taskset)")
		loadCPU = flag.String("load-cpu", "1", "CPU list for the load generator (taskset)")
		limit   = flag.Duration("timeout", 15*time.Minute, "upper bound of the whole run")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadtest: ")
	switch {
	case *serve != "":
		if *profDir != "" {
			f, err := os.Create(filepath.Join(*profDir, *serve+".cpu"))
			if err != nil {
				log.Fatal(err)
			}
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		if err := serveVariant(*serve, *issuer, *redisAddr, *keyHex); err != nil {
			log.Fatal(err)
		}
	case *gen != "":
		if err := generate(*gen, *cookie, *conns, *dur); err != nil {
			log.Fatal(err)
		}
	default:
		variants := strings.Split(*only, ",")
		for _, v := range variants {
			if !slices.Contains(allVariants, v) {
				log.Fatalf("unknown variant %q (have %s)", v, strings.Join(allVariants, ", "))
			}
		}
		if *rounds < 1 || *dur <= 0 || *conns < 1 {
			log.Fatal("-rounds, -duration and -conns must be positive")
		}
		ctx, cancel := context.WithTimeout(context.Background(), *limit)
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		r := &runner{variants: variants, rounds: *rounds, dur: *dur, warmup: *warmup, conns: *conns,
			loader: *loader, srvCPU: *srvCPU, loadCPU: *loadCPU, profDir: *profDir}
		err := r.run(ctx)
		r.cleanup()
		stop()
		cancel()
		if err != nil {
			log.Fatal(err)
		}
	}
}

// ---- child: the servers under test ----

var body = []byte(`{"sub":"alice-0001","name":"Alice Example","email":"alice@example.com"}` + "\n")

// handler is the same in every variant.
var handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
})

func serveVariant(variant, issuer, redisAddr, keyHex string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	var closers []func()
	switch variant {
	case "bare":
		mux.Handle("GET /api/me", handler)
	case "bff-memory", "bff-redis", "bff-redis-nocache":
		key, err := hex.DecodeString(keyHex)
		if err != nil {
			return fmt.Errorf("-key: %w", err)
		}
		o := bff.Options{
			Issuer: issuer, ClientID: oidctest.DefaultClientID, ClientSecret: oidctest.DefaultClientSecret,
			BaseURL: base, SecretKeys: [][]byte{key},
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}
		if variant != "bff-memory" {
			pool := bff.NewRedisPool(redisAddr)
			closers = append(closers, func() { pool.Close() })
			o.Redis = pool
			o.DisableSessionCache = variant == "bff-redis-nocache"
		}
		auth, err := bff.New(o)
		if err != nil {
			return err
		}
		closers = append([]func(){func() { auth.Close() }}, closers...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = auth.Ready(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		mux.Handle("/auth/", auth)
		mux.Handle("GET /api/me", auth.RequireSession(handler))
	case "scs-memory", "scs-redis":
		sm := scs.New()
		if variant == "scs-redis" {
			pool := bff.NewRedisPool(redisAddr)
			closers = append(closers, func() { pool.Close() })
			sm.Store = redisstore.New(pool)
		}
		mux.Handle("GET /login", sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "user", "alice-0001")
			w.WriteHeader(http.StatusNoContent)
		})))
		// The hand-written check: a session with a user, else 401.
		mux.Handle("GET /api/me", sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if sm.GetString(r.Context(), "user") == "" {
				http.Error(w, `{"error":"unauthenticated"}`, http.StatusUnauthorized)
				return
			}
			handler.ServeHTTP(w, r)
		})))
	default:
		return fmt.Errorf("unknown variant %q", variant)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("LISTEN %s\n", ln.Addr())
	// The parent holds our stdin: its end (or death) stops us.
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	for _, c := range closers {
		c()
	}
	return nil
}

// ---- child: the Go load generator (when wrk is missing) ----

func generate(target, cookie string, conns int, dur time.Duration) error {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var ok, bad, errs atomic.Int64
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", target, nil)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			for time.Now().Before(deadline) {
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("RESULT requests=%d non2xx=%d errors=%d seconds=%.3f\n", ok.Load()+bad.Load(), bad.Load(), errs.Load(), secs)
	return nil
}

// ---- parent ----

type child struct {
	variant string
	cmd     *exec.Cmd
	stdin   io.Closer
	addr    string
	cookie  string // Cookie header value
}

type result struct {
	rps       float64
	requests  int64
	non2xx    int64
	errors    int64
	cpuUs     float64 // server CPU microseconds per request
	redisUs   float64 // redis-server CPU microseconds per request
	redisCmds float64 // Redis commands per request
	cmdStats  map[string]int64
}

type runner struct {
	variants        []string
	rounds          int
	dur, warmup     time.Duration
	conns           int
	loader          string
	srvCPU, loadCPU string
	profDir         string

	pin      bool
	wrk      string
	self     string
	op       *http.Server
	redis    *exec.Cmd
	redisAdr string
	children []*child
	results  map[string][]result
	notes    []string
}

func (r *runner) run(ctx context.Context) error {
	var err error
	if r.self, err = os.Executable(); err != nil {
		return err
	}
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		r.pin = true
	} else {
		r.notes = append(r.notes, "not pinned to CPUs (taskset missing or fewer than 2 CPUs): server and load generator share the machine")
	}
	switch r.loader {
	case "wrk", "auto":
		if p, err := exec.LookPath("wrk"); err == nil {
			r.wrk = p
		} else if r.loader == "wrk" {
			return errors.New("wrk not found")
		} else {
			r.notes = append(r.notes, "wrk not found: the Go load generator was used (heavier than wrk: ratios are compressed toward 1)")
		}
	case "go":
	default:
		return fmt.Errorf("unknown -loader %q", r.loader)
	}

	// The provider, in process.
	issuer, err := r.startOP()
	if err != nil {
		return err
	}
	// Redis, if a variant needs it.
	needRedis := slices.ContainsFunc(r.variants, func(v string) bool { return strings.Contains(v, "redis") })
	if needRedis {
		if err := r.startRedis(ctx); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	rand.Read(key)
	for _, v := range r.variants {
		c, err := r.startChild(ctx, v, issuer, hex.EncodeToString(key))
		if err != nil {
			return fmt.Errorf("%s: %w", v, err)
		}
		if err := signIn(c); err != nil {
			return fmt.Errorf("%s: sign-in: %w", v, err)
		}
		if err := check(c); err != nil {
			return fmt.Errorf("%s: %w", v, err)
		}
		log.Printf("%s: serving on %s", v, c.addr)
	}

	r.results = map[string][]result{}
	if r.warmup > 0 {
		for _, c := range r.children {
			if _, err := r.load(ctx, c, r.warmup); err != nil {
				return fmt.Errorf("%s: warm-up: %w", c.variant, err)
			}
		}
	}
	for round := range r.rounds {
		n := len(r.children)
		for i := range n {
			c := r.children[(i+round)%n] // rotate the order between rounds
			res, err := r.load(ctx, c, r.dur)
			if err != nil {
				return fmt.Errorf("%s: %w", c.variant, err)
			}
			log.Printf("round %d %-18s %9.0f req/s  %6.1f µs CPU/req  non-2xx %d", round+1, c.variant, res.rps, res.cpuUs, res.non2xx)
			r.results[c.variant] = append(r.results[c.variant], res)
		}
	}
	for _, c := range r.children {
		if err := check(c); err != nil {
			return fmt.Errorf("%s after the load: %w", c.variant, err)
		}
	}
	r.report()
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (r *runner) startOP() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	op := oidctest.New(oidctest.Config{})
	// Another origin than the apps' (127.0.0.1), as in production.
	issuer := "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	op.SetIssuer(issuer)
	r.op = &http.Server{Handler: op, ReadHeaderTimeout: 10 * time.Second}
	go r.op.Serve(ln)
	return issuer, nil
}

func (r *runner) pinned(cpus, name string, args ...string) *exec.Cmd {
	if r.pin {
		return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (r *runner) startRedis(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found (apt-get install redis-server, or -variants without redis)")
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	r.redisAdr = "127.0.0.1:" + strconv.Itoa(port)
	r.redis = r.pinned(r.srvCPU, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning")
	r.redis.Stderr = os.Stderr
	if err := r.redis.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := redis.Dial("tcp", r.redisAdr, redis.DialConnectTimeout(200*time.Millisecond))
		if err == nil {
			_, err = conn.Do("PING")
			conn.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis-server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *runner) startChild(ctx context.Context, variant, issuer, key string) (*child, error) {
	cmd := r.pinned(r.srvCPU, r.self, "-serve", variant, "-issuer", issuer, "-redis", r.redisAdr, "-key", key,
		"-profile-dir", r.profDir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{variant: variant, cmd: cmd, stdin: stdin}
	r.children = append(r.children, c)
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				line <- a
			}
		}
	}()
	select {
	case c.addr = <-line:
		return c, nil
	case <-time.After(20 * time.Second):
		return nil, errors.New("the server did not start")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func noRedirectClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signIn gets a session for c: the whole OpenID Connect flow for bff, one
// Put for scs.
func signIn(c *child) error {
	base := "http://" + c.addr
	client := noRedirectClient()
	switch {
	case c.variant == "bare":
		c.cookie = "__Host-bff=" + rand.Text() // the same request bytes as the others
		return nil
	case strings.HasPrefix(c.variant, "scs-"):
		resp, err := client.Get(base + "/login")
		if err != nil {
			return err
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "session" {
				c.cookie = "session=" + ck.Value
			}
		}
	default:
		u := base + "/auth/login?returnTo=/"
		for range 10 {
			resp, err := client.Get(u)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			for _, ck := range resp.Cookies() {
				if ck.Name == "__Host-bff" && ck.Value != "" {
					c.cookie = "__Host-bff=" + ck.Value
				}
			}
			if c.cookie != "" || resp.StatusCode < 300 || resp.StatusCode >= 400 {
				break
			}
			next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				return err
			}
			u = next.String()
		}
	}
	if c.cookie == "" {
		return errors.New("no session cookie")
	}
	return nil
}

// check: the guarded variants answer 200 with the session and 401 without.
func check(c *child) error {
	get := func(cookie string) (int, error) {
		req, _ := http.NewRequest("GET", "http://"+c.addr+"/api/me", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(c.cookie); err != nil || code != 200 {
		return fmt.Errorf("GET /api/me with the session: %d %v", code, err)
	}
	if c.variant != "bare" {
		if code, err := get(""); err != nil || code != 401 {
			return fmt.Errorf("GET /api/me without a session: %d %v, want 401", code, err)
		}
	}
	return nil
}

var (
	wrkTotal  = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)`)
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSock   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	genResult = regexp.MustCompile(`RESULT requests=(\d+) non2xx=(\d+) errors=(\d+) seconds=([\d.]+)`)
)

// load runs the load generator against c for d and measures.
func (r *runner) load(ctx context.Context, c *child, d time.Duration) (result, error) {
	var res result
	target := "http://" + c.addr + "/api/me"
	isRedis := strings.Contains(c.variant, "redis")
	if isRedis {
		if err := r.redisDo("CONFIG", "RESETSTAT"); err != nil {
			return res, err
		}
	}
	cpu0 := procCPU(c.cmd.Process.Pid)
	var rcpu0 time.Duration
	if r.redis != nil {
		rcpu0 = procCPU(r.redis.Process.Pid)
	}

	var cmd *exec.Cmd
	secs := strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
	if r.wrk != "" {
		cmd = r.pinned(r.loadCPU, r.wrk, "-t1", "-c"+strconv.Itoa(r.conns), "-d"+secs+"s", "--timeout", "5s",
			"-H", "Cookie: "+c.cookie, target)
	} else {
		cmd = r.pinned(r.loadCPU, r.self, "-gen", target, "-cookie", c.cookie, "-conns", strconv.Itoa(r.conns),
			"-duration", d.String())
	}
	cmd.Stderr = os.Stderr
	runCtx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	stop := context.AfterFunc(runCtx, func() { cmd.Process.Kill() })
	out, err := cmd.Output()
	stop()
	if err != nil {
		return res, fmt.Errorf("load generator: %w: %s", err, out)
	}

	cpu1 := procCPU(c.cmd.Process.Pid)
	var rcpu1 time.Duration
	if r.redis != nil {
		rcpu1 = procCPU(r.redis.Process.Pid)
	}
	text := string(out)
	if r.wrk != "" {
		m := wrkTotal.FindStringSubmatch(text)
		rps := wrkRPS.FindStringSubmatch(text)
		if m == nil || rps == nil {
			return res, fmt.Errorf("cannot parse wrk output: %s", text)
		}
		res.requests, _ = strconv.ParseInt(m[1], 10, 64)
		res.rps, _ = strconv.ParseFloat(rps[1], 64)
		if m := wrkNon2xx.FindStringSubmatch(text); m != nil {
			res.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if m := wrkSock.FindStringSubmatch(text); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				res.errors += n
			}
		}
	} else {
		m := genResult.FindStringSubmatch(text)
		if m == nil {
			return res, fmt.Errorf("cannot parse the generator's output: %s", text)
		}
		res.requests, _ = strconv.ParseInt(m[1], 10, 64)
		res.non2xx, _ = strconv.ParseInt(m[2], 10, 64)
		res.errors, _ = strconv.ParseInt(m[3], 10, 64)
		s, _ := strconv.ParseFloat(m[4], 64)
		res.rps = float64(res.requests) / s
	}
	if res.requests > 0 {
		res.cpuUs = float64((cpu1 - cpu0).Microseconds()) / float64(res.requests)
		if isRedis {
			res.redisUs = float64((rcpu1 - rcpu0).Microseconds()) / float64(res.requests)
		}
	}
	if isRedis {
		stats, err := r.commandStats()
		if err != nil {
			return res, err
		}
		res.cmdStats = stats
		var total int64
		for _, n := range stats {
			total += n
		}
		if res.requests > 0 {
			res.redisCmds = float64(total) / float64(res.requests)
		}
	}
	return res, nil
}

func (r *runner) redisDo(cmd string, args ...any) error {
	conn, err := redis.Dial("tcp", r.redisAdr, redis.DialConnectTimeout(time.Second))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Do(cmd, args...)
	return err
}

// commandStats returns the calls per command since the last RESETSTAT,
// without the measuring commands themselves.
func (r *runner) commandStats() (map[string]int64, error) {
	conn, err := redis.Dial("tcp", r.redisAdr, redis.DialConnectTimeout(time.Second))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", "commandstats"))
	if err != nil {
		return nil, err
	}
	stats := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd || name == "info" || name == "config|resetstat" || name == "config" {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				stats[name] = n
			}
		}
	}
	return stats, nil
}

// procCPU is the user+system CPU time of a process (Linux), 0 elsewhere.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *runner) report() {
	med := func(v string, f func(result) float64) float64 {
		var xs []float64
		for _, res := range r.results[v] {
			xs = append(xs, f(res))
		}
		return median(xs)
	}
	rps := func(v string) float64 { return med(v, func(x result) float64 { return x.rps }) }
	bare := rps("bare")
	bareCPU := med("bare", func(x result) float64 { return x.cpuUs })

	loaderName := "wrk -t1 -c" + strconv.Itoa(r.conns)
	if r.wrk == "" {
		loaderName = "Go generator, " + strconv.Itoa(r.conns) + " connections"
	}
	fmt.Printf("Load: %s, %d round(s) × %s per variant, interleaved; server CPU %s, load CPU %s (pinned: %v).\n\n",
		loaderName, r.rounds, r.dur, r.srvCPU, r.loadCPU, r.pin)
	fmt.Println("| variant | req/s (median) | req/s per round | × bare | server CPU µs/req (× bare) | redis-server CPU µs/req | Redis cmds/req |")
	fmt.Println("|---|---:|---|---:|---:|---:|---|")
	var bad []string
	for _, v := range r.variants {
		var per []string
		var non2xx, errs int64
		for _, res := range r.results[v] {
			per = append(per, fmt.Sprintf("%.0f", res.rps))
			non2xx += res.non2xx
			errs += res.errors
		}
		if non2xx > 0 || errs > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d non-2xx responses, %d socket errors", v, non2xx, errs))
		}
		ratio := "—"
		if bare > 0 && v != "bare" {
			ratio = fmt.Sprintf("%.2f", rps(v)/bare)
		} else if v == "bare" {
			ratio = "1.00"
		}
		redisCPU, cmds := "—", "—"
		if strings.Contains(v, "redis") {
			redisCPU = fmt.Sprintf("%.1f", med(v, func(x result) float64 { return x.redisUs }))
			cmds = fmt.Sprintf("%.3f", med(v, func(x result) float64 { return x.redisCmds })) + cmdBreakdown(r.results[v])
		}
		cpu := med(v, func(x result) float64 { return x.cpuUs })
		cpuText := fmt.Sprintf("%.1f", cpu)
		if bareCPU > 0 && v != "bare" {
			cpuText += fmt.Sprintf(" (%.2f×)", cpu/bareCPU)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %s | %s |\n", v, rps(v), strings.Join(per, ", "), ratio,
			cpuText, redisCPU, cmds)
	}
	fmt.Println()
	if bare > 0 {
		target := func(name string, ok bool, detail string) {
			mark := "met"
			if !ok {
				mark = "NOT met"
			}
			fmt.Printf("- %s: %s (%s)\n", name, mark, detail)
		}
		if has(r.variants, "bff-memory") {
			x := rps("bff-memory") / bare
			target("bff-memory ≥ 0.90× bare", x >= 0.90, fmt.Sprintf("%.2f×", x))
			if has(r.variants, "scs-memory") && rps("scs-memory") > 0 {
				y := rps("bff-memory") / rps("scs-memory")
				target("bff-memory ≥ 2× scs-memory", y >= 2, fmt.Sprintf("%.2f×", y))
			}
		}
		if has(r.variants, "bff-redis") {
			x := rps("bff-redis") / bare
			target("bff-redis (cache) ≥ 0.75× bare", x >= 0.75, fmt.Sprintf("%.2f×", x))
		}
		if has(r.variants, "bff-redis-nocache") {
			x := rps("bff-redis-nocache") / bare
			target("bff-redis-nocache ≥ 0.40× bare", x >= 0.40, fmt.Sprintf("%.2f×", x))
		}
	}
	for _, n := range append(r.notes, bad...) {
		fmt.Printf("- note: %s\n", n)
	}
}

func has(xs []string, x string) bool { return slices.Contains(xs, x) }

// cmdBreakdown lists the commands per request of the median run, such as
// " (get 1.000)".
func cmdBreakdown(rs []result) string {
	if len(rs) == 0 {
		return ""
	}
	s := slices.Clone(rs)
	sort.Slice(s, func(i, j int) bool { return s[i].rps < s[j].rps })
	m := s[len(s)/2]
	if m.requests == 0 {
		return ""
	}
	var parts []string
	for name, n := range m.cmdStats {
		if per := float64(n) / float64(m.requests); per >= 0.0005 {
			parts = append(parts, fmt.Sprintf("%s %.3f", name, per))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}

func (r *runner) cleanup() {
	for _, c := range r.children {
		c.stdin.Close()
	}
	for _, c := range r.children {
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	}
	if r.redis != nil {
		r.redis.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { r.redis.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			r.redis.Process.Kill()
			<-done
		}
	}
	if r.op != nil {
		r.op.Close()
	}
}
