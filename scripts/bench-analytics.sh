#!/usr/bin/env bash
# Uncached analytics for the heavy user: the realistic seed (1,000 users,
# 1,000,000 events; the `demo` user holds 22% of them) in a fresh
# PostgreSQL database, `modellab serve` with the response cache off
# (DISABLE_CACHE=true: every request reads the database), and
# `modellab loadtest --targets api-analytics` as the demo user at C
# connections, RUNS times. With BEFORE=<git revision>, the same is run
# against that revision's binary on its own freshly seeded database, the
# two builds' runs alternating, so that they are measured side by side.
#
#   scripts/bench-analytics.sh [connections] [duration] [runs]
#
# Environment: PGURL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
conns=${1:-64}
dur=${2:-20s}
runs=${3:-3}
work=$(mktemp -d)
pgurl=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
dbs=()
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; for d in "${dbs[@]}"; do psql "$pgurl" -qc "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done; git worktree remove --force "$work/before" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# start NAME BINARY PORT: seed a database with BINARY, serve it uncached on
# PORT; sets token_NAME and pid_NAME.
start() {
  local name=$1 bin=$2 port=$3 db="modellab_analytics_${1}_$$"
  dbs+=("$db")
  psql "$pgurl" -qc "CREATE DATABASE $db" >/dev/null
  local dburl="${pgurl%/*}/$db?sslmode=disable"
  local t0=$SECONDS
  "$bin" seed --database "$dburl" >"$work/$name-users.json" 2>"$work/$name-seed.err"
  echo "$name: seeded in $((SECONDS - t0)) s"
  local token; token=$(sed -n 's/.*"name": *"demo".*"token": *"\([^"]*\)".*/\1/p' "$work/$name-users.json" | head -1)
  if [ -z "$token" ]; then token=$(tr -d '\n ' <"$work/$name-users.json" | sed -n 's/.*"name":"demo"[^}]*"token":"\([^"]*\)".*/\1/p'); fi
  printf -v "token_$name" '%s' "$token"
  DATABASE_URL="$dburl" DISABLE_CACHE=true DISABLE_REDIS_CACHE=true ACCESS_LOG=false LOG_LEVEL=warn \
    "$bin" serve --addr 127.0.0.1:$port >"$work/$name-serve.out" 2>"$work/$name-serve.err" &
  printf -v "pid_$name" '%s' "$!"
  for _ in $(seq 1 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
}

# load NAME PORT RUN: one load test of the server NAME.
load() {
  local tok="token_$1"
  echo "== $1 run $3 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$work/modellab" loadtest --url "http://127.0.0.1:$2" --token "${!tok}" --targets api-analytics \
    --connections "$conns" --duration "$dur" | grep -v '^$'
}

go build -o "$work/modellab" ./cmd/modellab
builds=(after)
if [ -n "${BEFORE:-}" ]; then
  git worktree add -q --detach "$work/before" "$BEFORE"
  (cd "$work/before" && go build -o "$work/modellab-before" ./cmd/modellab)
  start before "$work/modellab-before" 18292
  builds=(before after)
fi
start after "$work/modellab" 18291
# Both servers run from here on (an idle one costs nothing) and their runs
# alternate, so that the machine's drift falls on both alike.
for run in $(seq 1 "$runs"); do
  for b in "${builds[@]}"; do
    if [ "$b" = before ]; then load before 18292 "$run"; else load after 18291 "$run"; fi
  done
done
