#!/usr/bin/env bash
# Lints the API document (web/openapi.json) with Redocly CLI under the rules
# of redocly.yaml (Redocly's recommended rules, every one an error). Any
# problem fails; a clean document exits 0.
#
# The linter is installed with npm, at the pinned version below, into a cache
# directory outside the repository (MODELLAB_REDOCLY_DIR, default
# ~/.cache/modellab-redocly), and reused from there. Where it cannot be had
# (no node or npm, a node too old for it, the registry unreachable) the lint
# is skipped with a message and exit 0, so that `make test` still runs the
# rest; MODELLAB_OPENAPI_LINT=off skips it on purpose.
set -euo pipefail

# Redocly CLI 2.77.0 runs on Node.js >= 20.19 (20.x) or >= 22.12; it prints a
# notice that later releases will need Node.js 22.
REDOCLY_VERSION=2.77.0

cd "$(dirname "$0")/.."

log() { printf 'lint-openapi: %s\n' "$*" >&2; }
skip() {
  log "SKIPPED: $*"
  exit 0
}

if [ "${MODELLAB_OPENAPI_LINT:-}" = off ]; then
  skip "MODELLAB_OPENAPI_LINT=off"
fi
command -v node >/dev/null 2>&1 || skip "node is not installed (Node.js 20.19+ or 22.12+ runs the linter)"

# node_ok: Node.js 20.19+ within 20.x, or 22.12+.
node_ok() {
  node -e '
    const [maj, min] = process.versions.node.split(".").map(Number);
    process.exit((maj === 20 && min >= 19) || maj > 22 || (maj === 22 && min >= 12) ? 0 : 1);'
}
node_ok || skip "node $(node --version) is too old for @redocly/cli@$REDOCLY_VERSION (it needs 20.19+ or 22.12+)"

dir="${MODELLAB_REDOCLY_DIR:-$HOME/.cache/modellab-redocly}"
bin="$dir/node_modules/.bin/redocly"
pkg="$dir/node_modules/@redocly/cli/package.json"

installed_version() {
  [ -x "$bin" ] && [ -f "$pkg" ] && node -p 'require(process.argv[1]).version' "$pkg" 2>/dev/null
}

if [ "$(installed_version || true)" != "$REDOCLY_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || skip "npm is not installed, so @redocly/cli@$REDOCLY_VERSION cannot be installed"
  log "installing @redocly/cli@$REDOCLY_VERSION into $dir"
  mkdir -p "$dir"
  if ! npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    --fetch-retries=1 --fetch-timeout=30000 "@redocly/cli@$REDOCLY_VERSION" >&2; then
    skip "npm could not install @redocly/cli@$REDOCLY_VERSION (is the npm registry reachable?)"
  fi
  [ "$(installed_version || true)" = "$REDOCLY_VERSION" ] ||
    skip "npm did not leave @redocly/cli@$REDOCLY_VERSION in $dir"
fi

# No usage telemetry from builds, no update notice.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
exec "$bin" lint --config redocly.yaml "$@"
