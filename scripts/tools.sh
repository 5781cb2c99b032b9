#!/usr/bin/env bash
# Tools that check the deployment files (nginx, promtool), fetched as
# Debian packages and unpacked under .cache/tools/root of the repository:
# nothing is installed on the system, no service is started.
#
#   scripts/tools.sh nginx promtool    # prints nothing, exits 0 when both are there
#
# A tool already on PATH is used as it is. Exits 1 (with a message) when a
# tool can neither be found nor fetched (no apt-get, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
root=.cache/tools/root
log() { printf 'tools: %s\n' "$*" >&2; }

# tool NAME → package, and the path of the binary inside it.
pkg_of() {
  case "$1" in
    nginx) echo "nginx:usr/sbin/nginx nginx-common:" ;;
    promtool) echo "prometheus:usr/bin/promtool" ;;
    *) log "unknown tool $1"; return 1 ;;
  esac
}

fetch() {
  local name=$1 spec pkg path
  if command -v "$name" >/dev/null 2>&1; then return 0; fi
  for spec in $(pkg_of "$name"); do
    pkg=${spec%%:*}; path=${spec#*:}
    if [ -n "$path" ] && [ -x "$root/$path" ]; then return 0; fi
  done
  if ! command -v apt-get >/dev/null 2>&1; then
    log "$name is not installed and apt-get is not available"; return 1
  fi
  local dl; dl=$(mktemp -d)
  for spec in $(pkg_of "$name"); do
    pkg=${spec%%:*}; path=${spec#*:}
    log "fetching the Debian package $pkg (for $name)"
    if ! (cd "$dl" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
      log "apt-get download $pkg failed (no network, or run apt-get update)"; rm -rf "$dl"; return 1
    fi
    mkdir -p "$root"
    if [ -n "$path" ]; then
      # Only the binary: a package like prometheus is mostly other files.
      dpkg-deb --fsys-tarfile "$dl"/"$pkg"_*.deb | tar -x -C "$root" "./$path"
    else
      dpkg-deb -x "$dl"/"$pkg"_*.deb "$root"
    fi
  done
  rm -rf "$dl"
}

# path NAME prints the binary to run.
path() {
  local name=$1 spec
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  for spec in $(pkg_of "$name"); do
    p=${spec#*:}
    if [ -n "$p" ] && [ -x "$root/$p" ]; then echo "$PWD/$root/$p"; return; fi
  done
  return 1
}

if [ "${1:-}" = "--path" ]; then
  path "$2"
  exit
fi
status=0
for t in "$@"; do fetch "$t" || status=1; done
exit $status
