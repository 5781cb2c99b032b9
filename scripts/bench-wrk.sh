#!/usr/bin/env bash
# Checks that `modellab loadtest` is not the bottleneck: it and wrk load the
# same target (cmd/staticserver, the same bytes for every request) with the
# same connections, alternately, and the median req/s of each is printed
# with their ratio.
#
#   scripts/bench-wrk.sh [connections] [duration] [runs] [body-file]
set -euo pipefail
command -v wrk >/dev/null || { echo "this benchmark needs wrk (apt-get install wrk)" >&2; exit 1; }
conns=${1:-200}
dur=${2:-10s}
runs=${3:-3}
body=${4:-}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/modellab" ./cmd/modellab
go build -o "$work/staticserver" ./cmd/staticserver
args=(--addr 127.0.0.1:18183)
if [ -n "$body" ]; then args+=(--file "$body"); fi
"$work/staticserver" "${args[@]}" >/dev/null 2>&1 &
for _ in $(seq 1 50); do curl -fs -o /dev/null http://127.0.0.1:18183/api/models && break; sleep 0.1; done
echo "body: $(curl -fs http://127.0.0.1:18183/api/models | wc -c) bytes"
url=http://127.0.0.1:18183/api/models
w=(); l=()
for i in $(seq 1 "$runs"); do
  w+=("$(wrk -t2 -c"$conns" -d"$dur" "$url" | awk '/Requests\/sec/{print $2}')")
  l+=("$("$work/modellab" loadtest --url http://127.0.0.1:18183 --path /api/models \
      --connections "$conns" --duration "$dur" --json 2>/dev/null |
      sed -n 's/.*"rps": *\([0-9.]*\).*/\1/p' | head -1)")
  echo "run $i: wrk ${w[-1]} req/s, loadtest ${l[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
mw=$(median "${w[@]}"); ml=$(median "${l[@]}")
echo "median: wrk $mw req/s, loadtest $ml req/s, ratio $(awk -v a="$ml" -v b="$mw" 'BEGIN{printf "%.2f", a/b}')"
