// Package redistest starts real redis-server (and redis-sentinel) processes
// for tests.
//
// Start finds redis-server in PATH (or /usr/bin). When it is missing the test
// is skipped, or fails when the CI environment variable is set; so does
// StartGroup without redis-sentinel. Each server listens on a free 127.0.0.1
// port, persists nothing and is stopped by t.Cleanup.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/testsupport"
)

// Timeouts used by the connections of Pool and Do: short, so that tests of an
// outage fail fast.
const (
	ConnectTimeout = 500 * time.Millisecond
	ReadTimeout    = 500 * time.Millisecond
	WriteTimeout   = 500 * time.Millisecond
)

const startTimeout = 5 * time.Second

// Server is a running (or stopped) redis-server or redis-sentinel.
type Server struct {
	// Addr is "127.0.0.1:port". It stays the same across Restart.
	Addr string
	// TLSAddr is "127.0.0.1:port" of the TLS port when Config.TLS was
	// set, else "". Addr stays plain TCP, for the helper.
	TLSAddr string

	t        testing.TB
	bin      string
	port     int
	tlsPort  int
	dir      string
	args     func() ([]string, error) // the command line after the binary
	sentinel bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	stopped bool
	gen     uint64 // incremented by every (re)start; pooled connections of older generations are discarded

	helper *redis.Pool // for Do, CommandStats, ResetStats
}

// Start starts a redis-server for the test and registers its shutdown with t.Cleanup.
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, Config{}) }

// Config adds to what Start runs.
type Config struct {
	// Args are more redis-server arguments, such as "--replicaof",
	// "127.0.0.1", "6379" or "--user", "bff", "on", ">secret", "~*", "+@all".
	Args []string
	// TLS, when set, makes the server listen for TLS too, on TLSAddr, with
	// TLS's certificate (clients need not present one).
	TLS *TLS
}

// StartWith starts a redis-server with cfg and registers its shutdown with
// t.Cleanup.
func StartWith(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := &Server{t: t, bin: lookBin(t, "redis-server", "redis-server"), dir: t.TempDir()}
	s.args = func() ([]string, error) {
		args := []string{
			"--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--protected-mode", "yes",
			"--daemonize", "no",
			"--dir", s.dir,
			"--loglevel", "warning",
			// A replica gets its first copy at once (Redis waits 5 s
			// for more replicas to share a transfer by default).
			"--repl-diskless-sync-delay", "0",
		}
		if cfg.TLS != nil {
			args = append(args, "--tls-port", strconv.Itoa(s.tlsPort), "--tls-cert-file", cfg.TLS.CertFile,
				"--tls-key-file", cfg.TLS.KeyFile, "--tls-ca-cert-file", cfg.TLS.CAFile, "--tls-auth-clients", "no")
		}
		return append(args, cfg.Args...), nil
	}
	s.launch(cfg.TLS != nil)
	return s
}

// lookBin finds a binary in PATH or /usr/bin, or skips the test (fails it
// when CI is set) naming the Debian package to install.
func lookBin(t testing.TB, name, pkg string) string {
	t.Helper()
	if bin, err := exec.LookPath(name); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name
	}
	msg := fmt.Sprintf("redistest: %s not found in PATH or /usr/bin; install it with `apt-get install %s` (Debian/Ubuntu) or run scripts/test.sh", name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// launch picks free ports and starts the process, then the helper pool.
func (s *Server) launch(withTLS bool) {
	s.t.Helper()
	s.t.Cleanup(s.Stop)
	// The port is free when we look but another process may take it before
	// redis binds it: retry with a new port a few times.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err == nil && withTLS {
			s.tlsPort, err = freePort()
			s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
		}
		if err != nil {
			s.t.Fatalf("redistest: finding a free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		s.t.Fatalf("redistest: %v", lastErr)
	}
	s.helper = s.newPool()
	s.t.Cleanup(func() { _ = s.helper.Close() })
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

// start launches the process on s.port and waits until it answers PING.
func (s *Server) start() error {
	args, err := s.args()
	if err != nil {
		return err
	}
	out := &testsupport.LogBuffer{Limit: 64 << 10}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	exitedEarly := false
	answered := testsupport.Poll(startTimeout, func() bool {
		select {
		case <-exited:
			exitedEarly = true
			return true
		default:
		}
		return ping(s.Addr, cmd.Process.Pid, !s.sentinel) == nil
	})
	switch {
	case exitedEarly:
		return fmt.Errorf("%s on port %d exited during start-up: %s", s.bin, s.port, strings.TrimSpace(out.String()))
	case !answered:
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s on port %d did not answer PING within %v: %s", s.bin, s.port, startTimeout, strings.TrimSpace(out.String()))
	}

	s.mu.Lock()
	s.cmd, s.exited, s.stopped = cmd, exited, false
	s.gen++
	s.mu.Unlock()
	return nil
}

// ping checks that the redis-server with process ID pid answers on addr (and
// not some other process that took the port), and resets its command
// statistics (a sentinel has none to reset).
func ping(addr string, pid int, resetStats bool) error {
	c, err := redis.Dial("tcp", addr,
		redis.DialConnectTimeout(100*time.Millisecond),
		redis.DialReadTimeout(500*time.Millisecond),
		redis.DialWriteTimeout(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "server"))
	if err != nil {
		return err
	}
	if !strings.Contains(info, "process_id:"+strconv.Itoa(pid)+"\r\n") {
		return errors.New("another process answers on the port")
	}
	if !resetStats {
		return nil
	}
	// Start with clean command statistics.
	_, err = c.Do("CONFIG", "RESETSTAT")
	return err
}

// Stop kills the process (SIGKILL, no shutdown handshake) and waits for it to
// exit. It is safe to call on a stopped server and from several goroutines.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.cmd == nil {
		s.stopped = true
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.stopped = true
}

// signal sends sig to the running process, or fails the test.
func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.cmd == nil {
		s.t.Fatalf("redistest: %v to the stopped server on %s", sig, s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v to the server on %s: %v", sig, s.Addr, err)
	}
}

// Replicated waits until n replicas hold every write made on the server so
// far (WAIT, at most timeout), and fails the test if they do not.
func (s *Server) Replicated(n int, timeout time.Duration) {
	s.t.Helper()
	conn := s.helper.Get()
	defer conn.Close()
	// WAIT counts the writes of its own connection: write a marker. The
	// replication stream is ordered, so every earlier write precedes it.
	if _, err := conn.Do("INCR", "redistest:replicated"); err != nil {
		s.t.Fatalf("redistest: marker write on %s: %v", s.Addr, err)
	}
	got, err := redis.Int(redis.DoWithTimeout(conn, timeout+ReadTimeout, "WAIT", n, timeout.Milliseconds()))
	if err != nil || got < n {
		s.t.Fatalf("redistest: WAIT %d on %s: %d replicas acknowledged, %v", n, s.Addr, got, err)
	}
}

// Stopped reports whether the server is stopped, by Stop or because the
// process exited on its own.
func (s *Server) Stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.cmd == nil {
		return true
	}
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Restart stops the server if it runs and starts it again on the same port,
// with an empty data set. Call it from the test goroutine: it fails the test
// if the server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The port was just released; retry briefly in case the bind races.
	for range 3 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Pool returns a new redigo pool for the server, closed by t.Cleanup. Its
// connections use 500 ms connect/read/write timeouts, so requests fail fast
// while the server is stopped. Idle connections made before a Restart are
// discarded on borrow, so the pool works again right after Restart.
func (s *Server) Pool() *redis.Pool {
	p := s.newPool()
	s.t.Cleanup(func() { _ = p.Close() })
	return p
}

type genConn struct {
	redis.Conn
	gen uint64
}

// The context and timeout variants pass through, so that code using
// redigo's DoContext, ReceiveWithTimeout and Script.DoContext works on the
// test pool as on a plain one.

func (c genConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

func (c genConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	return redis.DoWithTimeout(c.Conn, d, cmd, args...)
}

func (c genConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

func (c genConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, d)
}

func (s *Server) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

var errStale = errors.New("redistest: connection predates a restart")

func (s *Server) newPool() *redis.Pool {
	return &redis.Pool{
		MaxIdle:     8,
		IdleTimeout: time.Minute,
		Dial: func() (redis.Conn, error) {
			gen := s.generation()
			c, err := redis.Dial("tcp", s.Addr,
				redis.DialConnectTimeout(ConnectTimeout),
				redis.DialReadTimeout(ReadTimeout),
				redis.DialWriteTimeout(WriteTimeout))
			if err != nil {
				return nil, err
			}
			return genConn{Conn: c, gen: gen}, nil
		},
		TestOnBorrow: func(c redis.Conn, _ time.Time) error {
			if gc, ok := c.(genConn); ok && gc.gen != s.generation() {
				return errStale
			}
			return nil
		},
	}
}

// Client returns a helper to run commands on the server; each call uses a
// pooled connection of the server's internal pool.
func (s *Server) Client() *Client { return &Client{s: s} }

// Client runs commands on a Server.
type Client struct{ s *Server }

// Do runs one command, e.g. Do("SET", "k", "v").
func (c *Client) Do(cmd string, args ...any) (any, error) { return c.s.Do(cmd, args...) }

// Do runs one command on the server, e.g. s.Do("GET", "k"). Use the redigo
// helpers (redis.String, redis.Int, ...) to convert the reply.
func (s *Server) Do(cmd string, args ...any) (any, error) {
	conn := s.helper.Get()
	defer conn.Close()
	return conn.Do(cmd, args...)
}

// CommandStats returns the number of calls per command since the start (or
// the last ResetStats), from INFO commandstats. Names are lower case as redis
// reports them ("get", "set", "multi", "exec"; subcommands as "config|resetstat").
// Commands run by this helper (ping, info, config|resetstat) appear as well.
// It fails the test on error.
func (s *Server) CommandStats() map[string]int {
	s.t.Helper()
	info, err := redis.String(s.Do("INFO", "commandstats"))
	if err != nil {
		s.t.Fatalf("redistest: INFO commandstats: %v", err)
	}
	stats, err := parseCommandStats(info)
	if err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	return stats
}

func parseCommandStats(info string) (map[string]int, error) {
	stats := map[string]int{}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.ToLower(strings.TrimPrefix(name, "cmdstat_"))
		for field := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			if k != "calls" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("parsing commandstats line %q: %w", line, err)
			}
			stats[name] = n
		}
	}
	return stats, nil
}

// ResetStats resets the command statistics (CONFIG RESETSTAT). It fails the test on error.
func (s *Server) ResetStats() {
	s.t.Helper()
	if _, err := s.Do("CONFIG", "RESETSTAT"); err != nil {
		s.t.Fatalf("redistest: CONFIG RESETSTAT: %v", err)
	}
}
