package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/oidctest"
)

// child is a server under test: a process of this binary with -serve.
type child struct {
	variant string
	cmd     *exec.Cmd
	stdin   io.Closer
	addr    string
	cookie  string // Cookie header value
}

// runner is the parent: it starts the provider, redis-server and the
// children, runs the load and reports.
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

// run measures every variant and prints the report.
func (r *runner) run(ctx context.Context) error {
	if err := r.chooseTools(); err != nil {
		return err
	}
	if err := r.startServers(ctx); err != nil {
		return err
	}
	if err := r.measure(ctx); err != nil {
		return err
	}
	for _, c := range r.children {
		if err := check(c); err != nil {
			return fmt.Errorf("%s after the load: %w", c.variant, err)
		}
	}
	r.report()
	return nil
}

// chooseTools finds this binary (for the children), whether to pin with
// taskset, and the load generator; what is missing becomes a note.
func (r *runner) chooseTools() error {
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
	return nil
}

// startServers starts the provider, redis-server if a variant needs it, and
// one child per variant, each signed in and checked.
func (r *runner) startServers(ctx context.Context) error {
	issuer, err := r.startOP()
	if err != nil {
		return err
	}
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
	return nil
}

// measure runs the warm-up, then the rounds, rotating the variants' order
// from one round to the next.
func (r *runner) measure(ctx context.Context) error {
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
	return nil
}

// freePort picks a free loopback port for redis-server, which takes a port
// number rather than a listener.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startOP serves an oidctest provider in this process and returns its
// issuer URL.
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

// pinned is the command name args, on the CPUs cpus when pinning is on.
func (r *runner) pinned(cpus, name string, args ...string) *exec.Cmd {
	if r.pin {
		return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.Command(name, args...)
}

// startRedis starts redis-server without persistence on a free loopback
// port, pinned to the servers' CPU, and waits until it answers PING.
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

// startChild starts this binary with -serve variant, pinned to the servers'
// CPU, and waits for the address it prints.
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

// cleanup stops the children (their stdin ends), redis-server and the
// provider, killing a process that does not stop within 5 seconds.
func (r *runner) cleanup() {
	for _, c := range r.children {
		c.stdin.Close()
	}
	for _, c := range r.children {
		waitOrKill(c.cmd)
	}
	if r.redis != nil {
		r.redis.Process.Signal(syscall.SIGTERM)
		waitOrKill(r.redis)
	}
	if r.op != nil {
		r.op.Close()
	}
}

// waitOrKill waits for cmd to exit, killing it after 5 seconds.
func waitOrKill(cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
