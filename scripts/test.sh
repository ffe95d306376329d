#!/usr/bin/env bash
# Runs every check of the repository: gofmt, go vet, the race-enabled tests of
# the root module and of every nested module, and short fuzz runs.
#
# Knobs:
#   FUZZTIME=5s     duration of each fuzz target's run (a release: FUZZTIME=10m)
#   OTHER_GO=go1.27.3  the second supported Go release, fetched by the go
#                   command from the module proxy (GOTOOLCHAIN); OTHER_GO=
#                   (empty) skips its run
#   BFF_SKIP_FUZZ=1 skip fuzzing
#   CI=...          when non-empty, tests needing redis-server, redis-sentinel,
#                   chromium or node fail instead of skipping
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

section() {
	printf '\n==== %s ====\n' "$*"
}

section "system packages"
# command:package pairs needed by the tests.
needed=("redis-server:redis-server" "redis-sentinel:redis-sentinel" "chromium:chromium")
missing=()
for pair in "${needed[@]}"; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	if command -v "$cmd" >/dev/null 2>&1; then
		echo "found $cmd: $(command -v "$cmd")"
	else
		missing+=("$pkg")
	fi
done
if ((${#missing[@]} > 0)); then
	echo "installing missing packages: ${missing[*]}"
	if [[ $(id -u) -eq 0 ]]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -y
		apt-get install -y "${missing[@]}"
	elif command -v sudo >/dev/null 2>&1; then
		sudo env DEBIAN_FRONTEND=noninteractive apt-get update -y
		sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
	else
		echo "error: missing packages ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
		exit 1
	fi
fi

section "npm packages (interop/oidcprovider)"
# panva's oidc-provider, pinned by its lock file, for the interop tests.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "error: node and npm are needed for interop/oidcprovider: install Node.js 20 or later with npm" >&2
	exit 1
fi
echo "node $(node --version), npm $(npm --version)"
(cd interop/oidcprovider && npm ci --no-audit --no-fund)

section "go version"
go version

section "gofmt"
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	echo "these files need gofmt -w:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "ok"

section "go mod tidy (root module)"
go mod tidy -diff
echo "ok"

section "go vet (root module)"
go vet ./...

section "go test -race (root module)"
go test -race -count=1 ./...

# bff supports the two most recent Go releases, as Go itself does: the
# machine's (go.mod's go line, 1.26) and the newer one. The newer one runs
# the root module's vet and tests without the race detector, which the run
# above has: the whole CI stays within its 15 minutes.
other_go=${OTHER_GO-go1.27.3}
if [[ -n $other_go ]]; then
	section "go vet, go test (root module) on ${other_go}"
	GOTOOLCHAIN=$other_go go version
	GOTOOLCHAIN=$other_go go vet ./...
	GOTOOLCHAIN=$other_go go test -count=1 ./...
fi

# TestLoad runs only when named; without the race detector its figures
# (requests/s, p99) mean something. Budget: BFF_LOAD_SESSIONS, BFF_LOAD_REQUESTS.
section "load test (root module)"
go test -count=1 -run '^TestLoad$' -v .

# 2,000 open event streams on one instance: memory per stream, idle CPU.
section "event stream load test (root module)"
go test -count=1 -run '^TestLoadEventStreams$' -v .

# Nested modules: every go.mod below the root, outside testdata, vendor and hidden directories.
nested=()
while IFS= read -r mod; do
	nested+=("$(dirname "$mod")")
done < <(find . -mindepth 2 -name go.mod \
	-not -path '*/testdata/*' -not -path '*/vendor/*' -not -path '*/.*/*' -not -path '*/node_modules/*' | sort)

for dir in "${nested[@]}"; do
	section "nested module ${dir#./}: go vet, go test -race"
	(cd "$dir" && go mod tidy -diff && go vet ./... && go test -race -count=1 ./...)
done

if [[ ${BFF_SKIP_FUZZ:-} == 1 ]]; then
	section "fuzzing skipped (BFF_SKIP_FUZZ=1)"
	exit 0
fi

section "fuzzing (${FUZZTIME:-5s} per target)"
# Fuzz targets of the root module only: skip files inside nested modules.
in_nested() {
	local f=$1 d
	for d in "${nested[@]}"; do
		[[ $f == "$d"/* ]] && return 0
	done
	return 1
}
targets=0
while IFS= read -r file; do
	if in_nested "$file"; then
		continue
	fi
	pkgdir=$(dirname "$file")
	while IFS= read -r name; do
		echo "--- ${pkgdir#./} ${name}"
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "${FUZZTIME:-5s}" "./${pkgdir#./}"
		targets=$((targets + 1))
	done < <(grep -oE '^func Fuzz[A-Za-z0-9_]*\(' "$file" | sed -e 's/^func //' -e 's/($//')
done < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . \
	| grep -vE '/(testdata|vendor|node_modules)/|/\.' | sort)
echo "fuzzed ${targets} target(s)"

section "all checks passed (${root})"
