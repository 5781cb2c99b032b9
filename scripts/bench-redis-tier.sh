#!/usr/bin/env bash
# Measures the Redis tier alone (DISABLE_LOCAL_CACHE=true, every request
# reads its entry from Redis) over NKEYS distinct cached analytics answers
# of 50-80 KB (one Redis round trip per request, little coalescing),
# against cmd/staticserver serving one such answer, side by side with wrk:
# clients without and with Accept-Encoding: gzip. Each run reports req/s
# and each server's CPU time per request. BEFORE_BIN, if set, is a second
# modellab binary (e.g. built from an older commit, or a script that sets
# GOGC and execs one) measured in the same runs.
#
#   scripts/bench-redis-tier.sh [connections] [duration] [runs]
#
# Environment: REDIS_URL (default redis://127.0.0.1:6379; keys go under a
# fresh CACHE_PREFIX and expire within the hour), NKEYS (200), DATABASE_URL
# and TOKEN (a seeded database and the heavy user's token; default: seed a
# fresh SQLite file, about 25 s), REDIS_PID (a local Redis's process ID:
# each run then also reports Redis's CPU time per request).
set -euo pipefail
declare -A pid
command -v wrk >/dev/null || { echo "this benchmark needs wrk (apt-get install wrk)" >&2; exit 1; }
conns=${1:-200}
dur=${2:-10s}
runs=${3:-3}
nkeys=${NKEYS:-200}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -u "$redis" --scan --pattern "benchrt:$$:*" | xargs -r -n 500 redis-cli -u "$redis" unlink >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/modellab" ./cmd/modellab
go build -o "$work/staticserver" ./cmd/staticserver
db=${DATABASE_URL:-}
token=${TOKEN:-}
if [ -z "$db" ]; then
  db="sqlite://$work/bench.db"
  "$work/modellab" seed --database "$db" >"$work/seed.json" 2>/dev/null
  token=$(grep -m1 '"token"' "$work/seed.json" | sed 's/.*"token": "\([^"]*\)".*/\1/')
fi
base=$(( $(date -u +%s) / 3600 * 3600 ))
admin="bench-admin-$$-0123456789abcdef"
from() { date -u -d "@$(( base - (80 + $1) * 3600 ))" +%Y-%m-%dT%H:00:00Z; }

# serve NAME BINARY PORT: one instance with the Redis tier alone.
serve() {
  DATABASE_URL=$db REDIS_URL=$redis CACHE_PREFIX="benchrt:$$:$1:" DISABLE_LOCAL_CACHE=true \
    ANALYTICS_CACHE_TTL_MS=3600000 ACCESS_LOG=false LOG_LEVEL=warn ADMIN_TOKEN="$admin" \
    "$2" serve --addr "127.0.0.1:$3" --demo=false >"$work/$1.log" 2>&1 &
  pids+=($!)
  pid[$1]=$!
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$3/healthz" && break; sleep 0.2; done
  local hits=0
  for i in $(seq 0 $((nkeys - 1))); do # fill every key, then check it is a HIT
    url="http://127.0.0.1:$3/api/analytics/data?interval=hour&from=$(from "$i")"
    curl -fs -o /dev/null -H "Authorization: Bearer $token" "$url"
    xc=$(curl -fs -o /dev/null -D - -H "Authorization: Bearer $token" "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
    [ "$xc" = HIT ] && hits=$((hits + 1))
  done
  echo "$1: $nkeys keys filled, $hits HIT on the second read; cache $(curl -fs "http://127.0.0.1:$3/readyz")"
}

cat >"$work/keys.lua" <<'EOF'
local n = tonumber(os.getenv("NKEYS"))
local base = tonumber(os.getenv("BASE"))
local hdr = {["Authorization"] = "Bearer " .. os.getenv("TOKEN")}
if os.getenv("GZIP") == "1" then hdr["Accept-Encoding"] = "gzip" end
request = function()
  local i = math.random(0, n - 1)
  local from = os.date("!%Y-%m-%dT%H:00:00Z", base - (80 + i) * 3600)
  return wrk.format("GET", "/api/analytics/data?interval=hour&from=" .. from, hdr)
end
EOF

serve after "$work/modellab" 18281
targets=(after)
if [ -n "${BEFORE_BIN:-}" ]; then
  serve before "$BEFORE_BIN" 18283
  targets+=(before)
fi
curl -fs -H "Authorization: Bearer $token" \
  "http://127.0.0.1:18281/api/analytics/data?interval=hour&from=$(from $((nkeys / 2)))" >"$work/body.json"
"$work/staticserver" --addr 127.0.0.1:18282 --file "$work/body.json" --gzip >/dev/null 2>&1 &
pids+=($!)
pid[static]=$!
sleep 0.5
echo "static body: $(wc -c <"$work/body.json") bytes ($(gzip -c "$work/body.json" | wc -c) gzipped)"

declare -A port=([static]=18282 [after]=18281 [before]=18283)
declare -A res cpu rcpu
[ -n "${REDIS_PID:-}" ] && pid[redis]=$REDIS_PID
cputicks() { awk '{print $14 + $15}' "/proc/${pid[$1]}/stat"; }
# rps TARGET GZIP: req/s, and the server's CPU per request in µs (user +
# system time of its process over the run; on a machine whose other
# tenants take CPU this moves less than req/s does).
rps() {
  local t0 out t1 r0=0 r1=0
  t0=$(cputicks "$1")
  [ -n "${pid[redis]:-}" ] && r0=$(cputicks redis)
  out=$(NKEYS=$nkeys BASE=$base TOKEN=$token GZIP=$2 wrk -t2 -c"$conns" -d"$dur" -s "$work/keys.lua" \
    "http://127.0.0.1:${port[$1]}")
  t1=$(cputicks "$1")
  [ -n "${pid[redis]:-}" ] && r1=$(cputicks redis)
  echo "$out" | awk -v t0="$t0" -v t1="$t1" -v r0="$r0" -v r1="$r1" -v hz="$(getconf CLK_TCK)" \
    '/requests in/{n=$1} /Requests\/sec/{r=$2} END{printf "%s %.1f %.1f\n", r, (t1-t0)/hz*1e6/n, (r1-r0)/hz*1e6/n}'
}
for i in $(seq 1 "$runs"); do
  for gz in 0 1; do
    line="run $i gzip=$gz:"
    for t in static "${targets[@]}"; do
      read -r v us rus < <(rps "$t" "$gz")
      res[$t,$gz]="${res[$t,$gz]:-} $v"
      cpu[$t,$gz]="${cpu[$t,$gz]:-} $us"
      line="$line $t $v ($us µs CPU/req"
      if [ -n "${pid[redis]:-}" ] && [ "$t" != static ]; then
        rcpu[$t,$gz]="${rcpu[$t,$gz]:-} $rus"
        line="$line, Redis $rus"
      fi
      line="$line)"
    done
    echo "$line req/s (load average $(cut -d' ' -f1 /proc/loadavg))"
  done
done
# A Redis call past its deadline sends the request to the database: check
# that the runs measured the Redis tier.
for t in "${targets[@]}"; do
  echo "$t: $(curl -fs -H "Authorization: Bearer $admin" "http://127.0.0.1:${port[$t]}/api/cache/stats" |
    sed 's/.*"redis":{"hits":\([0-9]*\),"misses":\([0-9]*\),"errors":\([0-9]*\)}.*"loads":\([0-9]*\).*/redis hits \1, misses \2, errors \3; loads \4/')"
done
median() { printf '%s\n' $@ | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for gz in 0 1; do
  ms=$(median ${res[static,$gz]})
  line="median gzip=$gz: static $ms req/s ($(median ${cpu[static,$gz]}) µs CPU/req)"
  for t in "${targets[@]}"; do
    m=$(median ${res[$t,$gz]})
    line="$line, $t $m req/s ($(median ${cpu[$t,$gz]}) µs CPU/req"
    [ -n "${pid[redis]:-}" ] && line="$line, Redis $(median ${rcpu[$t,$gz]})"
    line="$line; $(awk -v a="$m" -v b="$ms" 'BEGIN{printf "%.2f", a/b}')x static)"
    if [ "$gz" = 1 ]; then
      line="$line ($(awk -v a="$m" -v b="$(median ${res[static,0]})" 'BEGIN{printf "%.2f", a/b}')x static without gzip)"
    fi
  done
  echo "$line"
done
