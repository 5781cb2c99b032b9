#!/usr/bin/env bash
# fresh-clone.sh clones the repository (its committed HEAD) into a new
# temporary directory and runs the shell blocks of README.md there, in
# order, as a newcomer would paste them: `make readme-check`.
#
#   scripts/fresh-clone.sh [--skip-test] [--keep] [--timeout SECONDS]
#
#   --skip-test   do not run the block that is just `make test` (CI runs it)
#   --keep        keep the clone and the logs (printed at the end)
#   --timeout     limit of each block (default 600 s); a block that runs
#                 longer fails the check
#
# Which blocks run, and how, is read from README.md, so the check cannot
# drift from it:
#   - fenced blocks tagged sh, bash or shell run; other blocks (output,
#     text) do not;
#   - all blocks run in one shell state: variables a block sets are seen by
#     the next ones, and a server a block starts with & keeps running until
#     the end of the check;
#   - each block runs with `set -e`: a failing command fails the check;
#   - a marker in an HTML comment on the line just before a block (invisible
#     in the rendered README) changes how it runs:
#       <!-- readme-check: skip REASON -->
#           not run (long runs, tools that need a registry or a daemon, …);
#       <!-- readme-check: background URL -->
#           run in the background until URL answers 2xx, then stopped
#           (a server started in the foreground, like `make run`).
# Every process a block starts is stopped when the check ends.
set -euo pipefail

skip_test="" keep="" block_timeout=600
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-test) skip_test=1 ;;
    --keep) keep=1 ;;
    --timeout) block_timeout=$2; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-clone: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/modellab-fresh-XXXXXX")
clone=$work/modellab
log() { printf 'fresh-clone: %s\n' "$*" >&2; }

groups=()   # process groups started by blocks, stopped at the end
stop_group() {
  local g=$1
  kill -TERM -- "-$g" 2>/dev/null || return 0
  for _ in $(seq 1 60); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL -- "-$g" 2>/dev/null || true
}
cleanup() {
  local g
  for g in "${groups[@]}"; do stop_group "$g"; done
  if [ -n "$keep" ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ -n "$(git -C "$src" status --porcelain 2>/dev/null)" ]; then
  log "note: uncommitted changes in $src are not in the clone"
fi
git clone -q "$src" "$clone"
log "cloned $(git -C "$clone" rev-parse --short HEAD) into $clone"

# Split README.md into blocks: block-N.sh and block-N.meta ("LINE MODE ARG").
awk -v dir="$work" '
  function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
  /^<!-- readme-check:/ {
    m = $0; sub(/^<!-- readme-check:[ \t]*/, "", m); sub(/[ \t]*-->[ \t]*$/, "", m)
    marker = m; marker_line = NR; next
  }
  !inblock && /^```/ {
    lang = trim(substr($0, 4)); inblock = 1; start = NR
    run = (lang == "sh" || lang == "bash" || lang == "shell")
    mode = "run"; arg = ""
    if (marker != "" && marker_line == NR - 1) {
      split(marker, parts, /[ \t]+/); mode = parts[1]; arg = trim(substr(marker, length(parts[1]) + 1))
    }
    marker = ""
    if (run) { n++; file = dir "/block-" n ".sh"; printf "" > file
      printf "%d %s %s\n", NR, mode, arg > (dir "/block-" n ".meta") }
    next
  }
  inblock && /^```[ \t]*$/ { inblock = 0; if (run) close(file); next }
  inblock && run { print >> file; next }
' "$clone/README.md"

state=$work/state.sh
: > "$state"
# wrapper runs one block in the shared state and saves the variables it set.
cat > "$work/wrapper.sh" <<'EOF'
cd "$CLONE"
# shellcheck disable=SC1090
. "$STATE" 2>/dev/null || true
set -e
. "$BLOCK"
set +e
for __v in $(compgen -v); do
  case $__v in
    BASH*|FUNCNAME|PIPESTATUS|EUID|UID|PPID|SHELLOPTS|SHLVL|RANDOM|SECONDS|LINENO|HISTCMD|GROUPS|DIRSTACK|OPTIND|OPTARG|COMP*|SRANDOM|EPOCH*|PWD|OLDPWD|_|__v|CLONE|STATE|BLOCK) ;;
    *) declare -p "$__v" 2>/dev/null ;;
  esac
done > "$STATE.new"
mv "$STATE.new" "$STATE"
EOF

wait_url() { # URL SECONDS PID
  local url=$1 until=$((SECONDS + $2))
  while [ $SECONDS -lt $until ]; do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

n=$(ls "$work"/block-*.meta 2>/dev/null | wc -l)
ran=0 skipped=0
for i in $(seq 1 "$n"); do
  read -r line mode arg < "$work/block-$i.meta"
  body=$(cat "$work/block-$i.sh")
  out=$work/block-$i.log
  case "$mode" in
    skip)
      log "README.md:$line: skipped ($arg)"; skipped=$((skipped + 1)); continue ;;
    run|background) ;;
    *) log "README.md:$line: unknown marker '$mode'"; exit 1 ;;
  esac
  if [ -n "$skip_test" ] && [ "$(echo "$body" | sed 's/#.*//' | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')" = "make test" ]; then
    log "README.md:$line: make test skipped (--skip-test)"; skipped=$((skipped + 1)); continue
  fi
  log "README.md:$line: running ($mode)"
  printf '%s\n' "$body" | sed 's/^/    | /' >&2
  CLONE=$clone STATE=$state BLOCK=$work/block-$i.sh setsid timeout "$block_timeout" bash "$work/wrapper.sh" > "$out" 2>&1 &
  pid=$!
  groups+=("$pid")
  if [ "$mode" = background ]; then
    if ! wait_url "$arg" "$block_timeout" "$pid"; then
      log "README.md:$line: $arg did not answer; output:"; tail -n 40 "$out" >&2; exit 1
    fi
    log "README.md:$line: $arg answers; stopping it"
    stop_group "$pid"
    wait "$pid" 2>/dev/null || true
  else
    status=0
    wait "$pid" || status=$?
    if [ $status -ne 0 ]; then
      [ $status -eq 124 ] && log "README.md:$line: timed out after ${block_timeout}s"
      log "README.md:$line: failed (exit $status); output:"; tail -n 60 "$out" >&2; exit 1
    fi
  fi
  ran=$((ran + 1))
done
log "ok: $ran blocks ran, $skipped skipped (logs in $work when --keep is given)"
