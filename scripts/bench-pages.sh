#!/usr/bin/env bash
# The original load test's before/after of its six pages (Home, Models, Training
# Monitor, Docs, Lab Academy, Chat) and the three hot APIs, at 200
# connections on PostgreSQL + Redis, with the realistic seed loaded as a
# crowd: a fresh PostgreSQL database is created and seeded once
# (`modellab seed`, default sizes), then `modellab bench --users` runs RUNS
# times over it, each run printing its before/after table and ours beside
# the original load test's published ranges (docs/BENCHMARKS.md). The database is dropped at the end; Redis keys
# live under a fresh prefix per run, with a TTL, and nothing is flushed.
#
#   scripts/bench-pages.sh [runs] [duration] [connections]
#
# Environment: PG (default postgres://postgres@127.0.0.1:5432), REDIS
# (default redis://127.0.0.1:6379), TARGETS (default: bench's own, the six
# pages then api-models,api-servers,api-analytics), OUT (a directory that
# keeps users.json and each run's table and log; default a temporary one).
set -euo pipefail
runs=${1:-3}
dur=${2:-20s}
conns=${3:-200}
pg=${PG:-postgres://postgres@127.0.0.1:5432}
redis=${REDIS:-redis://127.0.0.1:6379}
db="modellab_bench_pages_$$"
work=$(mktemp -d)
out=${OUT:-$work}
mkdir -p "$out"
cleanup() {
  psql "$pg/postgres?sslmode=disable" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/modellab" ./cmd/modellab
psql "$pg/postgres?sslmode=disable" -qc "CREATE DATABASE $db"
url="$pg/$db?sslmode=disable"
echo "load average before seeding: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/modellab" seed --database "$url" >"$out/users.json"
echo "seeded: $(grep -c '"token"' "$out/users.json") users"
targets=()
if [ -n "${TARGETS:-}" ]; then targets=(--targets "$TARGETS"); fi
for i in $(seq 1 "$runs"); do
  echo "== run $i (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$work/modellab" bench --database "$url" --redis "$redis" --users "$out/users.json" \
    --connections "$conns" --duration "$dur" "${targets[@]}" >"$out/run$i.txt" 2>"$out/run$i.log"
  cat "$out/run$i.txt"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
