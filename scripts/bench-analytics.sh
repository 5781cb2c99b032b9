#!/usr/bin/env bash
# Uncached analytics for the heavy user: the realistic seed (1,000 users,
# 1,000,000 events; the `demo` user holds 22% of them) in a fresh
# PostgreSQL database, `modellab serve` with the response cache off
# (DISABLE_CACHE=true: every request reads the database), and
# `modellab loadtest --targets api-analytics` as the demo user at C
# connections, RUNS times. With BEFORE=<git revision>, the same is run
# first against that revision's binary on its own freshly seeded database,
# so that the two are measured side by side in one run.
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
trap 'kill $(jobs -p) 2>/dev/null || true; for d in "${dbs[@]}"; do psql "$pgurl" -qc "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done; git worktree remove --force "$work/before" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# measure NAME BINARY: seed a database with BINARY, serve it uncached, load it.
measure() {
  local name=$1 bin=$2 db="modellab_analytics_${1}_$$" port=18291
  dbs+=("$db")
  psql "$pgurl" -qc "CREATE DATABASE $db" >/dev/null
  local dburl="${pgurl%/*}/$db?sslmode=disable"
  local t0=$SECONDS
  "$bin" seed --database "$dburl" >"$work/$name-users.json" 2>"$work/$name-seed.err"
  echo "$name: seeded in $((SECONDS - t0)) s"
  local token; token=$(sed -n 's/.*"name": *"demo".*"token": *"\([^"]*\)".*/\1/p' "$work/$name-users.json" | head -1)
  if [ -z "$token" ]; then token=$(tr -d '\n ' <"$work/$name-users.json" | sed -n 's/.*"name":"demo"[^}]*"token":"\([^"]*\)".*/\1/p'); fi
  DATABASE_URL="$dburl" DISABLE_CACHE=true DISABLE_REDIS_CACHE=true ACCESS_LOG=false LOG_LEVEL=warn \
    "$bin" serve --addr 127.0.0.1:$port >"$work/$name-serve.out" 2>"$work/$name-serve.err" &
  local pid=$!
  for _ in $(seq 1 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
  for run in $(seq 1 "$runs"); do
    echo "== $name run $run (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$work/modellab" loadtest --url "http://127.0.0.1:$port" --token "$token" --targets api-analytics \
      --connections "$conns" --duration "$dur" | grep -v '^$'
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

go build -o "$work/modellab" ./cmd/modellab
if [ -n "${BEFORE:-}" ]; then
  git worktree add -q --detach "$work/before" "$BEFORE"
  (cd "$work/before" && go build -o "$work/modellab-before" ./cmd/modellab)
  measure before "$work/modellab-before"
fi
measure after "$work/modellab"
