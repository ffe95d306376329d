#!/usr/bin/env bash
# Measures bff's request paths and rewrites BENCHMARKS.md:
#   1. the load test (go -C tools run ./loadtest): a bare handler, RequireSession
#      on memory and on Redis, and hand-written scs/v2 checks, interleaved under
#      wrk, each server pinned to CPU 0 and wrk to CPU 1; loopback only;
#   2. the Go benchmarks of the root package (go test -bench . -benchmem);
#   3. what telemetry costs the hot path: telemetrytest's benchmarks with
#      OpenTelemetry off and on (the SDK's MeterProvider and TracerProvider).
#
# Arguments are passed to the load test, e.g.
#   scripts/bench.sh -rounds 5 -duration 10s
# Knobs:
#   BENCH_OUT=path   write there instead of BENCHMARKS.md
#   BENCHTIME=1s     -benchtime of the Go benchmarks
#   BENCH_BASELINE=rev  also count the hot path's instructions at this commit
#                    (scripts/instructions.sh; needs valgrind)
#   TELEMETRY_ROUNDS=300  rounds of the paired telemetry benchmark
#   BENCH_ONLY=telemetry  only re-run (3) and replace its section in place
#   BENCH_ONLY=scale      only re-run the scaling measurement (TestScale) and
#                    replace its section in place
#
# Figures are ratios measured in one run on one machine: run it on an idle
# machine, never compare absolute figures between machines.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${BENCH_OUT:-BENCHMARKS.md}

# command:package pairs; wrk is optional (the load test has a Go fallback)
# but the figures of BENCHMARKS.md are wrk's.
needed=("redis-server:redis-server" "wrk:wrk")
missing=()
for pair in "${needed[@]}"; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
	echo "installing missing packages: ${missing[*]}"
	if [[ $(id -u) -eq 0 ]]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -y && apt-get install -y "${missing[@]}" ||
			echo "warning: could not install ${missing[*]}" >&2
	elif command -v sudo >/dev/null 2>&1; then
		sudo env DEBIAN_FRONTEND=noninteractive apt-get update -y &&
			sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" ||
			echo "warning: could not install ${missing[*]}" >&2
	else
		echo "warning: missing ${missing[*]}; install them with apt-get install ${missing[*]}" >&2
	fi
fi
command -v redis-server >/dev/null 2>&1 || {
	echo "error: redis-server is required" >&2
	exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# telemetry_section runs (3) and prints its section of BENCHMARKS.md.
telemetry_section() {
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
	(cd telemetrytest && go test -run '^$' -cpu 1 -benchmem \
		-bench '^(BenchmarkRequireSessionTelemetry|BenchmarkTelemetryOverhead)$' \
		-benchtime "${TELEMETRY_ROUNDS:-300}x" .) 2>&1 |
		grep -E '^(goos|goarch|pkg|cpu|Benchmark|PASS|ok|FAIL|---)' >"$tmp/telemetry.txt"
	if grep -qE '^(FAIL|--- FAIL)' "$tmp/telemetry.txt"; then
		cat "$tmp/telemetry.txt" >&2
		echo "error: a telemetry benchmark failed" >&2
		exit 1
	fi
	cat <<EOF
## Telemetry overhead

What OpenTelemetry costs RequireSession's hot path (a session this instance has cached, a fresh
token), measured in process with \`-cpu 1\` in \`telemetrytest\` (its own module: the SDK is not a
dependency of the library). **off**: no \`MeterProvider\` nor \`TracerProvider\` (no-op); **on**:
the SDK's \`MeterProvider\` (with a reader) and \`TracerProvider\`. \`BenchmarkTelemetryOverhead\`
runs both side by side in alternating batches of 2,000 requests (the order swapped each round,
${TELEMETRY_ROUNDS:-300} rounds) so that both see the same load, and reports the median over rounds
of on/off − 1 as \`overhead-%\` (its \`ns/op\` is reported as 0, and its B/op and allocs/op count
a whole round).
\`BenchmarkRequireSessionTelemetry\` shows the allocations: the same with telemetry on.
On the hot path, metrics cost one atomic add (the session cache's hit count, read by an
observable counter at collection time); no span is started there. Load average before: ${load}.

\`\`\`
EOF
	cat "$tmp/telemetry.txt"
	echo '```'
}

# scale_section runs TestScale (with its BFF_SCALE_* knobs) and prints its
# section of BENCHMARKS.md.
scale_section() {
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
	BFF_SCALE=1 go test -count=1 -run '^TestScale$' -v -timeout 60m . 2>&1 | grep '^|' >"$tmp/scale.txt" || {
		echo "error: TestScale failed" >&2
		exit 1
	}
	cat <<EOF
## Scaling with the number of sessions

\`BFF_SCALE=1 go test -run '^TestScale\$' -v .\`: RequireSession behind net/http's server,
on loopback, serving \`GET /api/me\` to net/http's client (both in one process, 16 keep-alive
connections) with the cookies of 1,000 to 1,000,000 active sessions, in a random order, each
population measured in nine short interleaved rounds (the median is shown) after an unmeasured pass
over all its sessions (sessions in use within the cache's age bound). Sessions are minted straight
into the store (\`sessionStore.create\`, what a sign-in does after the provider's part), with typical
token sizes (JWT access and ID tokens of 1 KB). **CPU µs/req** is the process's CPU time per
request (client included), the figure least disturbed by other work on the machine, and its ratio
is what sets throughput on a machine of one's own; **store reads/req** are session-record reads
(cache misses, beyond \`SessionCacheBytes\`); the memory store's heap and Redis's memory per session
are measured while minting (before the cache fills). The populations of up to 24,000 sessions are
measured together, so that their ratio is the same run's; each larger one is measured alone after
the smaller ones are released, so that a million sessions' heap does not weigh on the others'
garbage collection (its ratio compares with the first group's run). With a million sessions the
memory store holds its sessions and the cache within README's budget (4 KiB of live heap per
session plus \`SessionCacheBytes\`, checked by the test). Load average before: ${load}.

EOF
	cat "$tmp/scale.txt"
	cat <<EOF

Beyond about 40,000 sessions of this size the default \`SessionCacheBytes\` (128 MiB) no longer holds every
active session: **store reads/req** shows the misses, each a record read and decoded (memory store) or a Redis
round trip as well. A larger \`SessionCacheBytes\` moves that point; the cost of each request stays O(1).

The cache alone (\`go test -run '^\$' -bench '^BenchmarkCache' -cpu 1,2,8\`): a lookup with 1,000 to
1,000,000 cached sessions on 1, 2 and 8 threads (lock contention), and an insertion into a full cache
(each one evicts). A lookup's time grows with the cache's size only through the CPU's memory caches.

\`\`\`
EOF
	go test -run '^$' -bench '^BenchmarkCache' -benchmem -cpu 1,2,8 . 2>&1 | grep -E '^Benchmark'
	echo '```'
}

# replace_section HEADING FILE: replaces the section of FILE that starts at
# HEADING (up to the next "## " heading) with standard input.
replace_section() {
	local new
	new=$(cat)
	NEW=$new awk -v h="$1" '
		$0 == h { print ENVIRON["NEW"]; print ""; skip = 1; next }
		skip && /^## / { skip = 0 }
		!skip { print }' "$2" >"$2.tmp" && mv "$2.tmp" "$2"
}

case ${BENCH_ONLY:-} in
telemetry)
	echo "==== telemetry overhead ===="
	telemetry_section | replace_section "## Telemetry overhead" "$out"
	echo "wrote the telemetry section of $out"
	exit 0
	;;
scale)
	echo "==== scaling ===="
	scale_section | replace_section "## Scaling with the number of sessions" "$out"
	echo "wrote the scaling section of $out"
	exit 0
	;;
esac

cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
machine="$(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr)"
go_version=$(go version)
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
wrk_version=$( (wrk --version 2>&1 || true) | head -1)
started=$(date -u +%Y-%m-%dT%H:%MZ)

echo "==== load test ===="
go -C tools run ./loadtest "$@" | tee "$tmp/load.md"

echo "==== go test -bench ===="
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" . 2>&1 |
	grep -E '^(goos|goarch|pkg|cpu|Benchmark|PASS|ok|FAIL|---)' | tee "$tmp/bench.txt"
if grep -qE '^(FAIL|--- FAIL)' "$tmp/bench.txt"; then
	echo "error: a benchmark failed" >&2
	exit 1
fi
echo "==== telemetry overhead ===="
telemetry_section | tee "$tmp/telemetry.md"
echo "==== scaling ===="
scale_section | tee "$tmp/scalesec.md"
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

{
	cat <<EOF
# Benchmarks

Regenerated by \`scripts/bench.sh\` (do not edit by hand). Run on ${started}.

## Machine

- ${machine}
- ${go_version}
- load generator: ${wrk_version:-wrk not installed (Go generator)}
- load average (1, 5, 15 min) before: ${load_before}; after: ${load_after}.
  Anything above ~0.1 means other work shared the CPUs and the figures are noisy:
  re-run on an idle machine.

## Method

\`go -C tools run ./loadtest\` starts, on loopback only, one server process per variant,
each pinned to CPU 0 (\`taskset -c 0\`, so GOMAXPROCS is 1), and runs \`wrk -t1 -c32\`
pinned to CPU 1 against \`GET /api/me\` with the session cookie. redis-server (started by
the load test on a free port, persistence off) is pinned to CPU 0 too: the server side of
every variant has one core. Every variant serves the same handler (a small fixed JSON);
only the guard in front of it differs:

- **bare**: the handler alone (the limit).
- **bff-memory**: \`RequireSession\`, default in-memory store, tokens sealed at rest, token fresh.
- **bff-redis**: \`RequireSession\` with \`Options.Redis\`; the per-instance session cache,
  kept honest by Redis pub/sub invalidation, is on (the default).
- **bff-redis-nocache**: the same with \`DisableSessionCache\`: one Redis GET per request.
- **scs-memory**: a hand-written scs/v2 check: \`LoadAndSave\` + \`GetString("user") != ""\`, else 401.
- **scs-redis**: the same check on scs/redisstore.

bff sessions are created by signing in through the whole OpenID Connect flow against an
in-process oidctest provider; scs sessions by one \`Put\`. The variants run interleaved
(round-robin, the order rotated each round, after an unmeasured warm-up); the table gives
the median requests/second over the rounds, its ratio to bare, the server process's CPU
time per request (from /proc, and its ratio to bare's), redis-server's CPU time per
request, and Redis commands per request (\`INFO commandstats\`, reset before each run;
PINGs are the invalidation channel's health checks).

## Load test

EOF
	cat "$tmp/load.md"
	cat <<EOF

## Go benchmarks

\`go test -run '^\$' -bench . -benchmem\` (package bff, in process): \`BenchmarkHotPathMemory/guarded\`
minus \`/bare\` is what RequireSession adds to a request (the bare handler's allocations include
httptest's recorder); Reject* are the 401 paths; Callback and Refresh include the calls to the
test provider over loopback.

\`\`\`
EOF
	cat "$tmp/bench.txt"
	echo '```'
	if command -v valgrind >/dev/null 2>&1; then
		cat <<EOF

## Instructions per request

\`scripts/instructions.sh\` counts, with callgrind, the instructions RequireSession's hot path executes
per request (cached session, fresh token). They do not depend on what else the machine runs: the
figure to compare versions with (BENCH_BASELINE=commit adds a row for that commit).

EOF
		bash scripts/instructions.sh ${BENCH_BASELINE:-} HEAD
	fi
	echo
	cat "$tmp/scalesec.md"
	echo
	cat "$tmp/telemetry.md"
} >"$out"
echo "wrote $out"
