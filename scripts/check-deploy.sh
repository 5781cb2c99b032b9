#!/usr/bin/env bash
# Checks the deployment files with the real tools (make check-deploy):
#   - nginx -t on deploy/nginx/modellab.conf, and nginx in front of two
#     instances (Go tests TestNginx*);
#   - promtool check rules and promtool test rules on deploy/prometheus/;
#   - the Go tests that parse compose.yaml, the Kubernetes manifests, the
#     systemd unit (and systemd-analyze verify) and the Dockerfiles, and the
#     one that checks the dashboard's and alerts' metric names against a
#     live /metrics;
#   - the container image test, when podman or a docker daemon is there.
# nginx and promtool are fetched by scripts/tools.sh when missing (Debian
# packages unpacked under .cache/tools, nothing installed); a tool that
# cannot be had is skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
log() { printf 'check-deploy: %s\n' "$*" >&2; }

if ./scripts/tools.sh promtool; then
  promtool=$(./scripts/tools.sh --path promtool)
  "$promtool" check rules deploy/prometheus/alerts.yml
  "$promtool" test rules deploy/prometheus/alerts_test.yml
else
  log "SKIPPED: promtool is not available (install Debian's prometheus package)"
fi
./scripts/tools.sh nginx || log "nginx is not available: the nginx tests will say SKIP"
# -v shows which checks ran and which were skipped (and why).
$GO test -count=1 -v -run 'Compose|Kubernetes|Systemd|Dockerfiles|Nginx|Dashboard|ContainerImage|Promtool' ./cmd/modellab \
  | grep -E '^(--- |ok|FAIL)|_test\.go:[0-9]+:'
