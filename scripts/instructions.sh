#!/usr/bin/env bash
# Counts the CPU instructions RequireSession's hot path executes per request
# (a cached session with a fresh token; memory store, and Redis with the
# session cache), with valgrind's callgrind. Instruction counts do not depend
# on what else the machine is doing, so they compare two versions of the code
# where wall-clock benchmarks on a shared machine cannot.
#
#   bash scripts/instructions.sh              # the working tree
#   bash scripts/instructions.sh REV [REV…]   # these commits (built in a temporary worktree)
#
# Per request = (count at N2 - count at N1) / (N2 - N1), so set-up (signing in,
# starting Redis) cancels out; each count is the median of three runs.
# GOMAXPROCS=1, GOGC=off and no async preemption keep the count repeatable
# (idle threads spinning and preemption signals would add noise, and
# callgrind cannot follow Go's preemption signals). Needs valgrind and
# redis-server (apt-get install valgrind redis-server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
N1=10000
N2=25000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; git -C "$root" worktree prune' EXIT

count() { # binary bench n -> instructions, retrying callgrind's rare crashes
	local out
	for _ in $(seq 12); do
		out=$(GOMAXPROCS=1 GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
			--callgrind-out-file="$tmp/cg" "$1" -test.run '^$' -test.bench "$2" \
			-test.benchtime="$3x" -test.count=1 2>&1 >/dev/null | grep -o 'Collected : [0-9]*' | awk '{print $3}') || true
		if [[ -n $out ]]; then
			echo "$out"
			return
		fi
	done
	echo "callgrind failed 12 times for $2 at $3" >&2
	echo fail
}

median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

perop() { # binary bench
	local a b
	a=$(median3 "$(count "$1" "$2" $N1)" "$(count "$1" "$2" $N1)" "$(count "$1" "$2" $N1)")
	b=$(median3 "$(count "$1" "$2" $N2)" "$(count "$1" "$2" $N2)" "$(count "$1" "$2" $N2)")
	if [[ $a == fail || $b == fail ]]; then
		echo "n/a"
		return
	fi
	echo $(((b - a) / (N2 - N1)))
}

measure() { # label dir
	(cd "$2" && go test -c -o "$tmp/bff.test" .)
	printf '| %s | %s | %s |\n' "$1" \
		"$(perop "$tmp/bff.test" '^BenchmarkRequireSessionMemory$')" \
		"$(perop "$tmp/bff.test" '^BenchmarkRequireSessionRedis$/^cache$')"
}

echo '| version | memory: instructions/request | Redis with cache: instructions/request |'
echo '|---|---:|---:|'
if [[ $# -eq 0 ]]; then
	measure "working tree" "$root"
fi
for rev in "$@"; do
	git -C "$root" worktree add --detach "$tmp/wt" "$rev" >/dev/null 2>&1
	measure "$(git -C "$root" rev-parse --short "$rev")" "$tmp/wt"
	git -C "$root" worktree remove --force "$tmp/wt"
done
