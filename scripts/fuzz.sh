#!/usr/bin/env bash
# fuzz.sh gives every fuzz target a short run: ./scripts/fuzz.sh [FUZZTIME]
# (default 10s each). A failing input is written under the package's
# testdata/fuzz/<Target>/ by go test; commit it with the fix so that it
# stays in the seed corpus that plain `go test` replays.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
GO="${GO:-go}"
status=0
# Every package with a fuzz_test.go, every Fuzz function in it.
for file in $(git ls-files '*fuzz_test.go' 2>/dev/null || find . -name 'fuzz_test.go' -not -path './vendor/*'); do
	pkg="./$(dirname "$file")"
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		echo "== $pkg $target ($fuzztime)"
		if ! "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			echo "FAIL: $pkg $target" >&2
			status=1
		fi
	done
done
exit $status
