#!/usr/bin/env bash
# The crowd benchmark: many users, not one heavy one. The realistic seed
# (1,000 users, 5,000 models of which 200 global) in a fresh PostgreSQL
# database; wrk at C connections, each request from a random user on a
# random hot endpoint (/api/models, /api/servers/status,
# /api/analytics/data). Two phases in the same run, each after the same
# warm-up: no writes, then an admin editing one global model per second.
# It prints each phase's req/s, latency percentiles and failures, the ratio
# of the two, and the model-list loads per global edit (from
# modellab_cache_loads_total).
#
#   scripts/bench-crowd.sh [connections] [duration] [runs]
#
# Environment: PGURL (default postgres://postgres@127.0.0.1:5432/postgres),
# REDIS_URL (default redis://127.0.0.1:6379; a unique CACHE_PREFIX keeps runs
# apart), USERS/MODELS/GLOBAL/EVENTS to size the seed, BIN to load a
# binary built elsewhere (e.g. an earlier revision, for a before/after of
# the same script) instead of building this tree's.
set -euo pipefail
command -v wrk >/dev/null || { echo "this benchmark needs wrk (apt-get install wrk)" >&2; exit 1; }
conns=${1:-200}
dur=${2:-20s}
runs=${3:-1}
work=$(mktemp -d)
pgurl=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
db="modellab_crowd_$$"
trap 'kill $(jobs -p) 2>/dev/null || true; psql "$pgurl" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
psql "$pgurl" -qc "CREATE DATABASE $db" >/dev/null
dburl="${pgurl%/*}/$db?sslmode=disable"
if [ -n "${BIN:-}" ]; then cp "$BIN" "$work/modellab"; else go build -o "$work/modellab" ./cmd/modellab; fi
"$work/modellab" seed --database "$dburl" --users "${USERS:-1000}" --models "${MODELS:-5000}" \
  --global-models "${GLOBAL:-200}" --events "${EVENTS:-1000000}" >"$work/users.json" 2>"$work/seed.err"
# One token per line for the Lua script.
sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$work/users.json" >"$work/tokens.txt"
echo "seeded: $(wc -l <"$work/tokens.txt") users"

export DATABASE_URL="$dburl" REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} CACHE_PREFIX="crowd$$:"
export ADMIN_TOKEN="crowd-admin-$$" ACCESS_LOG=false LOG_LEVEL=warn
"$work/modellab" serve --addr 127.0.0.1:18191 >"$work/serve.out" 2>"$work/serve.err" &
base=http://127.0.0.1:18191
for _ in $(seq 1 150); do curl -fs -o /dev/null "$base/healthz" && break; sleep 0.2; done

cat >"$work/crowd.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local paths = { "/api/models", "/api/servers/status", "/api/analytics/data" }
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
init = function() math.randomseed(os.time() * 1000 + (id or 0)) end
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", paths[math.random(#paths)], { ["Authorization"] = "Bearer " .. t })
end
LUA
export TOKENS_FILE="$work/tokens.txt"

loads() { curl -fs "$base/metrics" | awk -v ep="$1" '$1 ~ "^modellab_cache_loads_total\\{endpoint=\""ep"\"" {print $2}'; }
phase() { # name, then wrk's summary lines
  wrk -t2 -c"$conns" -d"$dur" --latency -s "$work/crowd.lua" "$base" >"$work/$1.txt"
  rps=$(awk '/Requests\/sec/{print $2}' "$work/$1.txt")
  p50=$(awk '$1=="50%"{print $2}' "$work/$1.txt"); p99=$(awk '$1=="99%"{print $2}' "$work/$1.txt")
  bad=$(awk '/Non-2xx/{print $5} /Socket errors/{print $0}' "$work/$1.txt" | tr '\n' ' ')
  echo "$1: $rps req/s, p50 $p50, p99 $p99, failures: ${bad:-0}"
}
gid=$(curl -fs "$base/api/models" | sed -n 's/^{"models":\[{"id":"\([^"]*\)".*/\1/p')
for run in $(seq 1 "$runs"); do
  echo "== run $run (connections $conns, $dur per phase, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  wrk -t2 -c"$conns" -d10s -s "$work/crowd.lua" "$base" >/dev/null # warm-up: every user's entries
  gauge() { curl -fs "$base/metrics" | awk -v n="$1" '$1 == n {printf "%.1f MB", $2 / 1e6}'; }
  echo "after warm-up: local tier $(gauge modellab_cache_local_bytes), composed answers $(gauge modellab_cache_composed_bytes)"
  m0=$(loads models); phase quiet; m1=$(loads models)
  ( n=0; while sleep 1; do n=$((n + 1))
      curl -fs -o /dev/null -X PATCH "$base/api/models/$gid" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -d "{\"description\": \"edit $run.$n\"}"; echo "$n" >"$work/edits"; done ) &
  editor=$!
  phase edits; m2=$(loads models)
  kill $editor; wait $editor 2>/dev/null || true
  edits=$(cat "$work/edits")
  q=$(awk '/Requests\/sec/{print $2}' "$work/quiet.txt"); w=$(awk '/Requests\/sec/{print $2}' "$work/edits.txt")
  awk -v q="$q" -v w="$w" -v e="$edits" -v a="$m0" -v b="$m1" -v c="$m2" 'BEGIN{
    printf "ratio edits/quiet: %.2f; model-list loads: %d quiet, %d during %d edits (%.1f per edit)\n",
      w / q, b - a, c - b, e, (c - b) / (e > 0 ? e : 1) }'
done
