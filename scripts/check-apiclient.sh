#!/usr/bin/env bash
# Fails when the committed client (apiclient/client.gen.go) is not exactly
# what the API document (web/openapi.json) generates: it runs the
# //go:generate command of apiclient/apiclient.go, the pinned oapi-codegen,
# into a temporary directory and compares. Fix a difference with
# `go generate ./apiclient/`.
#
# oapi-codegen comes from the Go module proxy (or the module cache); when it
# cannot be fetched the check is skipped with a message and exit 0.
# MODELLAB_APICLIENT_CHECK=off skips it on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'check-apiclient: %s\n' "$*" >&2; }

if [ "${MODELLAB_APICLIENT_CHECK:-}" = off ]; then
  log "SKIPPED: MODELLAB_APICLIENT_CHECK=off"
  exit 0
fi

# The generator and its version, from the one place that names them.
gen=$(sed -n 's#^//go:generate go run \([^ ]*oapi-codegen@v[^ ]*\) .*#\1#p' apiclient/apiclient.go)
if [ -z "$gen" ]; then
  log "no oapi-codegen //go:generate line in apiclient/apiclient.go"
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The configuration names the output relative to the working directory:
# run in the temporary one. go run pkg@version builds the generator from
# its own go.mod wherever it runs, as go generate does.
root=$PWD
if ! (cd "$tmp" && go run "$gen" -config "$root/apiclient/oapi-codegen.yaml" "$root/web/openapi.json") 2>"$tmp/err"; then
  # Outside any module, go list -m mod@version only needs the proxy.
  if ! (cd "$tmp" && go list -m "${gen%%/cmd/*}@${gen##*@}" >/dev/null 2>&1); then
    log "SKIPPED: $gen cannot be fetched (is the Go module proxy reachable?)"
    cat "$tmp/err" >&2
    exit 0
  fi
  cat "$tmp/err" >&2
  log "generating the client failed"
  exit 1
fi

if ! diff -u apiclient/client.gen.go "$tmp/client.gen.go" >"$tmp/diff"; then
  head -n 60 "$tmp/diff" >&2
  log "apiclient/client.gen.go differs from what web/openapi.json generates: run go generate ./apiclient/"
  exit 1
fi
log "apiclient/client.gen.go is what web/openapi.json generates ($gen)"
