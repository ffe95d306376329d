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
//
// Files: main.go the flags and the three modes, serve.go the servers under
// test (-serve), gen.go the Go load generator (-gen), runner.go the parent's
// processes, signin.go the sessions and the guards' check, measure.go one
// measured run, report.go the table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

var allVariants = []string{"bare", "bff-memory", "bff-redis", "bff-redis-nocache", "scs-memory", "scs-redis"}

// config is the command line: the parent's knobs and the children's modes
// (-serve, -gen), which the parent passes to the processes it starts.
type config struct {
	serve, issuer, redisAddr, keyHex, profDir string
	gen, cookie                               string
	rounds, conns                             int
	dur, warmup, limit                        time.Duration
	only, loader, srvCPU, loadCPU             string
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.serve, "serve", "", "child mode: serve this variant and print its address")
	flag.StringVar(&c.issuer, "issuer", "", "child mode: the provider's issuer URL")
	flag.StringVar(&c.redisAddr, "redis", "", "child mode: the Redis address")
	flag.StringVar(&c.keyHex, "key", "", "child mode: the secret key, hex")
	flag.StringVar(&c.profDir, "profile-dir", "", "write each server's CPU profile to DIR/VARIANT.cpu")

	flag.StringVar(&c.gen, "gen", "", "child mode: Go load generator against this URL")
	flag.StringVar(&c.cookie, "cookie", "", "Cookie header for -gen")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds of all variants")
	flag.DurationVar(&c.dur, "duration", 5*time.Second, "duration of each run")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "unmeasured warm-up run of each variant before the rounds")
	flag.IntVar(&c.conns, "conns", 32, "concurrent connections")
	flag.StringVar(&c.only, "variants", strings.Join(allVariants, ","), "comma-separated variants to run")
	flag.StringVar(&c.loader, "loader", "auto", "load generator: wrk, go, or auto (wrk if installed)")
	flag.StringVar(&c.srvCPU, "server-cpu", "0", "CPU list for the servers and redis-server (taskset)")
	flag.StringVar(&c.loadCPU, "load-cpu", "1", "CPU list for the load generator (taskset)")
	flag.DurationVar(&c.limit, "timeout", 15*time.Minute, "upper bound of the whole run")
	flag.Parse()
	return c
}

func main() {
	cfg := parseFlags()
	log.SetFlags(0)
	log.SetPrefix("loadtest: ")
	var err error
	switch {
	case cfg.serve != "":
		err = serveChild(cfg)
	case cfg.gen != "":
		err = generate(cfg.gen, cfg.cookie, cfg.conns, cfg.dur)
	default:
		err = runParent(cfg)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// serveChild serves one variant until the parent lets go of its stdin,
// writing a CPU profile when -profile-dir is set.
func serveChild(cfg config) error {
	if cfg.profDir != "" {
		f, err := os.Create(filepath.Join(cfg.profDir, cfg.serve+".cpu"))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	return serveVariant(cfg.serve, cfg.issuer, cfg.redisAddr, cfg.keyHex)
}

// runParent checks the flags, then runs and reports the variants; the
// children, redis-server and the provider are stopped whatever happens.
func runParent(cfg config) error {
	variants := strings.Split(cfg.only, ",")
	for _, v := range variants {
		if !slices.Contains(allVariants, v) {
			return fmt.Errorf("unknown variant %q (have %s)", v, strings.Join(allVariants, ", "))
		}
	}
	if cfg.rounds < 1 || cfg.dur <= 0 || cfg.conns < 1 {
		return errors.New("-rounds, -duration and -conns must be positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.limit)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &runner{variants: variants, rounds: cfg.rounds, dur: cfg.dur, warmup: cfg.warmup, conns: cfg.conns,
		loader: cfg.loader, srvCPU: cfg.srvCPU, loadCPU: cfg.loadCPU, profDir: cfg.profDir}
	defer r.cleanup()
	return r.run(ctx)
}
