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
# count prints how many inputs a corpus directory holds (0 when none).
count() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
# Every package with a fuzz_test.go, every Fuzz function in it.
for file in $(git ls-files '*fuzz_test.go' 2>/dev/null || find . -name 'fuzz_test.go' -not -path './vendor/*'); do
	pkg="./$(dirname "$file")"
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		echo "== $pkg $target ($fuzztime)"
		corpus="$pkg/testdata/fuzz/$target"
		before=$(count "$corpus")
		out=$(mktemp)
		if "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; then
			rm -f "$out"
			continue
		fi
		after=$(count "$corpus")
		# Go 1.26's fuzzing coordinator can report the end of -fuzztime itself
		# as a failure, "context deadline exceeded", with no failing input (a
		# race in its shutdown, fixed in Go 1.27). Only that exact case is retried
		# once; a failing input is always written to the corpus, and fails.
		if [ "$after" -eq "$before" ] && grep -q '^    context deadline exceeded$' "$out" && ! grep -q 'Failing input written' "$out"; then
			echo "== $pkg $target: the coordinator's deadline race, not an input; again"
			if "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
				rm -f "$out"
				continue
			fi
		fi
		rm -f "$out"
		echo "FAIL: $pkg $target" >&2
		status=1
	done
done
exit $status
