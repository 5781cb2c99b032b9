#!/usr/bin/env bash
# A crowd watching one live training run: N connections poll the run page's
# live fragment (/monitor/runs/{id}/live) while a writer ingests points into
# the run, one point per call, at a fixed rate. It reports the load test's
# table, the writer's calls, and the database statements per second from
# modellab_db_queries_total before and after, against the ingest calls per
# second: every poll between two ingests should be a cache hit, so the
# database sees the ingests and one reload per ingest, nothing per poll.
#
#   scripts/bench-runs-poll.sh [connections] [duration] [ingests/s] [points already in the run]
#
# It runs `modellab serve` on a fresh PostgreSQL database (dropped at the
# end) and the Redis at REDIS_URL, under a random key prefix.
set -euo pipefail
conns=${1:-1000}
dur=${2:-30s}
rate=${3:-10}
initial=${4:-2000}
pg=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
port=${PORT:-18187}
base=http://127.0.0.1:$port
admin=bench-admin-$RANDOM$RANDOM
db=modellab_bench_runs_$RANDOM$RANDOM
work=$(mktemp -d)
server_pid=""
writer_pid=""
cleanup() {
  touch "$work/stop"
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/modellab" ./cmd/modellab
psql "$pg" -qc "CREATE DATABASE $db" >/dev/null
dburl=${pg%/*}/$db?sslmode=disable
DATABASE_URL=$dburl REDIS_URL=$redis CACHE_PREFIX="bench-runs-$RANDOM:" ADMIN_TOKEN=$admin \
  ACCESS_LOG=false LOG_LEVEL=warn ADDR=127.0.0.1:$port \
  "$work/modellab" serve --demo=false >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "$base/readyz" && break; sleep 0.1; done

api() { curl -fsS -X "$1" "$base$2" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' ${4:+--data-binary "$4"}; }
json() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | head -1; }
token=$(api POST /api/users "$admin" '{"name": "watcher"}' | json token)
run=$(api POST /api/runs "$token" '{"name": "live-run", "params": {"lr": 0.0003}}' | json id)
# The run's history so far: loss, lr and an eval every 50 steps.
awk -v n="$initial" 'BEGIN {
  for (start = 0; start < n; start += 3000) {
    printf "{\"points\": ["
    sep = ""
    for (s = start; s < start + 3000 && s < n; s++) {
      printf "%s{\"key\": \"loss\", \"step\": %d, \"value\": %.4f}, {\"key\": \"lr\", \"step\": %d, \"value\": %.6g}", sep, s, 0.3 + 2.2 * exp(-s / 600) + 0.03 * sin(s), s, 0.0003 * (0.55 + 0.45 * cos(3.14159 * s / n))
      if (s % 50 == 49) printf ", {\"key\": \"eval_loss\", \"step\": %d, \"value\": %.4f}", s, 0.38 + 2.2 * exp(-s / 600)
      sep = ", "
    }
    print "]}"
  }
}' >"$work/history.jsonl"
while read -r body; do
  printf '%s' "$body" >"$work/batch.json"
  api POST "/api/runs/$run/metrics" "$token" "@$work/batch.json" >/dev/null
done <"$work/history.jsonl"
path=/monitor/runs/$run/live
echo "run $run: $initial steps; fragment $(curl -fs "$base$path" -H "Authorization: Bearer $token" | wc -c) bytes"

queries() { curl -fs "$base/metrics" | awk '/^modellab_db_queries_total/ {print $2}'; }
loads() { curl -fs "$base/metrics" | awk '/^modellab_cache_loads_total\{endpoint="runs"\}/ {print $2}'; }
# The writer: one point per call, in order (a trainer logs step after
# step), $rate calls a second on a fixed schedule as long as the answers
# keep up; one line per accepted call.
(
  step=$initial
  interval_ns=$((1000000000 / rate))
  next=$(date +%s%N)
  while [ ! -e "$work/stop" ]; do
    if api POST "/api/runs/$run/metrics" "$token" "{\"points\": [{\"key\": \"loss\", \"step\": $step, \"value\": 0.3$((step % 97))}]}" >/dev/null 2>&1; then
      echo "$step" >>"$work/ingested"
    fi
    step=$((step + 1))
    next=$((next + interval_ns))
    wait_ns=$((next - $(date +%s%N)))
    if [ "$wait_ns" -gt 0 ]; then sleep "$(awk -v n="$wait_ns" 'BEGIN {printf "%.3f", n / 1e9}')"; fi
  done
) &
writer_pid=$!
sleep 2
q0=$(queries); l0=$(loads); c0=$(wc -l <"$work/ingested"); t0=$(date +%s.%N)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/modellab" loadtest --url "$base" --path "$path" --connections "$conns" --duration "$dur" --token "$token" --json >"$work/report.json" 2>/dev/null
q1=$(queries); l1=$(loads); c1=$(wc -l <"$work/ingested"); t1=$(date +%s.%N)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
touch "$work/stop"
wait "$writer_pid" 2>/dev/null || true
writer_pid=""
sed -e 's/},{/},\n{/g' "$work/report.json"
awk -v q0="$q0" -v q1="$q1" -v l0="$l0" -v l1="$l1" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN {
  s = t1 - t0; q = (q1 - q0) / s; c = (c1 - c0) / s
  printf "window %.1f s: %d ingest calls (%.2f/s), %d history loads, %d database statements (%.2f/s): %.2f statements per ingest call\n", s, c1 - c0, c, l1 - l0, q1 - q0, q, (c > 0 ? q / c : 0)
}'
