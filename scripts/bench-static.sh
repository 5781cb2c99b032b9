#!/usr/bin/env bash
# Measures cached GET /api/models against a plain net/http handler writing the
# same bytes (cmd/staticserver), side by side with wrk, and prints the
# median req/s of each and their ratio.
#
#   scripts/bench-static.sh [connections] [duration] [runs]
#
# Environment: DATABASE_URL (default: a fresh SQLite demo database),
# REDIS_URL, DISABLE_LOCAL_CACHE=true to measure the Redis tier alone, and
# TOKEN to load the authenticated (user-scoped) list instead of the global one.
set -euo pipefail
command -v wrk >/dev/null || { echo "this benchmark needs wrk (apt-get install wrk)" >&2; exit 1; }
conns=${1:-200}
dur=${2:-10s}
runs=${3:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/modellab" ./cmd/modellab
go build -o "$work/staticserver" ./cmd/staticserver
export DATABASE_URL=${DATABASE_URL:-sqlite://$work/bench.db}
export ACCESS_LOG=false LOG_LEVEL=warn
"$work/modellab" serve --addr 127.0.0.1:18181 >"$work/serve.out" 2>"$work/serve.err" &
for _ in $(seq 1 100); do curl -fs -o /dev/null http://127.0.0.1:18181/healthz && break; sleep 0.2; done
hdr=()
if [ -n "${TOKEN:-}" ]; then hdr=(-H "Authorization: Bearer $TOKEN"); fi
curl -fs "${hdr[@]}" http://127.0.0.1:18181/api/models >"$work/body.json"
echo "body: $(wc -c <"$work/body.json") bytes; cache: $(curl -fs http://127.0.0.1:18181/readyz)"
"$work/staticserver" --addr 127.0.0.1:18182 --file "$work/body.json" >/dev/null 2>&1 &
sleep 0.5
rps() { wrk -t2 -c"$conns" -d"$dur" "${hdr[@]}" "$1" | awk '/Requests\/sec/{print $2}'; }
cached=(); static=()
for i in $(seq 1 "$runs"); do
  cached+=("$(rps http://127.0.0.1:18181/api/models)")
  static+=("$(rps http://127.0.0.1:18182/api/models)")
  echo "run $i: cached ${cached[-1]} req/s, static ${static[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
mc=$(median "${cached[@]}"); ms=$(median "${static[@]}")
echo "median: cached $mc req/s, static $ms req/s, ratio $(awk -v a="$mc" -v b="$ms" 'BEGIN{printf "%.2f", a/b}')"
