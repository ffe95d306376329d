package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// result is one measured run of one variant.
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

var (
	wrkTotal  = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)`)
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSock   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	genResult = regexp.MustCompile(`RESULT requests=(\d+) non2xx=(\d+) errors=(\d+) seconds=([\d.]+)`)
)

// load runs the load generator against c for d and measures.
func (r *runner) load(ctx context.Context, c *child, d time.Duration) (result, error) {
	isRedis := strings.Contains(c.variant, "redis")
	if isRedis {
		if err := r.redisDo("CONFIG", "RESETSTAT"); err != nil {
			return result{}, err
		}
	}
	cpu0, rcpu0 := r.cpuTimes(c)
	out, err := r.runGenerator(ctx, c, d)
	if err != nil {
		return result{}, err
	}
	cpu1, rcpu1 := r.cpuTimes(c)
	parse := parseGen
	if r.wrk != "" {
		parse = parseWrk
	}
	res, err := parse(string(out))
	if err != nil {
		return res, err
	}
	if res.requests > 0 {
		res.cpuUs = float64((cpu1 - cpu0).Microseconds()) / float64(res.requests)
		if isRedis {
			res.redisUs = float64((rcpu1 - rcpu0).Microseconds()) / float64(res.requests)
		}
	}
	if isRedis {
		if err := r.addCommandStats(&res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// cpuTimes is the CPU time of c's process and of redis-server (0 when not
// started).
func (r *runner) cpuTimes(c *child) (srv, rds time.Duration) {
	srv = procCPU(c.cmd.Process.Pid)
	if r.redis != nil {
		rds = procCPU(r.redis.Process.Pid)
	}
	return srv, rds
}

// runGenerator runs wrk (or this binary with -gen) against c for d, pinned
// to the load CPU, and returns its output; it is killed when ctx ends or
// when it overruns d by 30 seconds.
func (r *runner) runGenerator(ctx context.Context, c *child, d time.Duration) ([]byte, error) {
	target := "http://" + c.addr + "/api/me"
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
		return nil, fmt.Errorf("load generator: %w: %s", err, out)
	}
	return out, nil
}

// parseWrk reads the requests, req/s, non-2xx responses and socket errors
// from wrk's report.
func parseWrk(text string) (result, error) {
	var res result
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
	return res, nil
}

// parseGen reads the RESULT line of the Go generator (generate).
func parseGen(text string) (result, error) {
	var res result
	m := genResult.FindStringSubmatch(text)
	if m == nil {
		return res, fmt.Errorf("cannot parse the generator's output: %s", text)
	}
	res.requests, _ = strconv.ParseInt(m[1], 10, 64)
	res.non2xx, _ = strconv.ParseInt(m[2], 10, 64)
	res.errors, _ = strconv.ParseInt(m[3], 10, 64)
	s, _ := strconv.ParseFloat(m[4], 64)
	res.rps = float64(res.requests) / s
	return res, nil
}

// addCommandStats adds the Redis commands of the run to res, in all and per
// request.
func (r *runner) addCommandStats(res *result) error {
	stats, err := r.commandStats()
	if err != nil {
		return err
	}
	res.cmdStats = stats
	var total int64
	for _, n := range stats {
		total += n
	}
	if res.requests > 0 {
		res.redisCmds = float64(total) / float64(res.requests)
	}
	return nil
}

// redisDo sends one command to redis-server on a connection of its own.
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
