package main

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// median is the median of xs, 0 if empty.
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

// med is the median of f over v's rounds.
func (r *runner) med(v string, f func(result) float64) float64 {
	var xs []float64
	for _, res := range r.results[v] {
		xs = append(xs, f(res))
	}
	return median(xs)
}

// rps is v's median requests/second.
func (r *runner) rps(v string) float64 { return r.med(v, func(x result) float64 { return x.rps }) }

// report prints the markdown that scripts/bench.sh puts in BENCHMARKS.md:
// the run's settings, the table, the targets and the notes.
func (r *runner) report() {
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
		if f := r.failures(v); f != "" {
			bad = append(bad, f)
		}
		fmt.Println(r.row(v))
	}
	fmt.Println()
	if r.rps("bare") > 0 {
		r.printTargets()
	}
	for _, n := range append(r.notes, bad...) {
		fmt.Printf("- note: %s\n", n)
	}
}

// failures says how many of v's requests failed over all rounds, "" if none.
func (r *runner) failures(v string) string {
	var non2xx, errs int64
	for _, res := range r.results[v] {
		non2xx += res.non2xx
		errs += res.errors
	}
	if non2xx > 0 || errs > 0 {
		return fmt.Sprintf("%s: %d non-2xx responses, %d socket errors", v, non2xx, errs)
	}
	return ""
}

// row is v's line of the table.
func (r *runner) row(v string) string {
	bare := r.rps("bare")
	var per []string
	for _, res := range r.results[v] {
		per = append(per, fmt.Sprintf("%.0f", res.rps))
	}
	ratio := "—"
	if bare > 0 && v != "bare" {
		ratio = fmt.Sprintf("%.2f", r.rps(v)/bare)
	} else if v == "bare" {
		ratio = "1.00"
	}
	redisCPU, cmds := "—", "—"
	if strings.Contains(v, "redis") {
		redisCPU = fmt.Sprintf("%.1f", r.med(v, func(x result) float64 { return x.redisUs }))
		cmds = fmt.Sprintf("%.3f", r.med(v, func(x result) float64 { return x.redisCmds })) + cmdBreakdown(r.results[v])
	}
	cpu := r.med(v, func(x result) float64 { return x.cpuUs })
	cpuText := fmt.Sprintf("%.1f", cpu)
	if bareCPU := r.med("bare", func(x result) float64 { return x.cpuUs }); bareCPU > 0 && v != "bare" {
		cpuText += fmt.Sprintf(" (%.2f×)", cpu/bareCPU)
	}
	return fmt.Sprintf("| %s | %.0f | %s | %s | %s | %s | %s |", v, r.rps(v), strings.Join(per, ", "), ratio,
		cpuText, redisCPU, cmds)
}

// targets are the throughput goals checked after the table: variant's
// median req/s at least min times base's.
var targets = []struct {
	name, variant, base string
	min                 float64
}{
	{"bff-memory ≥ 0.90× bare", "bff-memory", "bare", 0.90},
	{"bff-memory ≥ 2× scs-memory", "bff-memory", "scs-memory", 2},
	{"bff-redis (cache) ≥ 0.75× bare", "bff-redis", "bare", 0.75},
	{"bff-redis-nocache ≥ 0.40× bare", "bff-redis-nocache", "bare", 0.40},
}

// printTargets says, for each target whose two variants ran, whether it
// was met.
func (r *runner) printTargets() {
	for _, t := range targets {
		ran := slices.Contains(r.variants, t.variant) && slices.Contains(r.variants, t.base)
		if !ran || r.rps(t.base) <= 0 {
			continue
		}
		x := r.rps(t.variant) / r.rps(t.base)
		mark := "NOT met"
		if x >= t.min {
			mark = "met"
		}
		fmt.Printf("- %s: %s (%.2f×)\n", t.name, mark, x)
	}
}

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
