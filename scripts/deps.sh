#!/usr/bin/env bash
# Makes sure the real dependencies the tests use are there and running:
# Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (user postgres,
# trust auth). Starts what is missing and installs it with apt-get when it is
# absent. It never stops or flushes a running server.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- Redis ---------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  apt_install redis-server redis-tools
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis-server on 127.0.0.1:6379"
  mkdir -p /tmp/modellab-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/modellab-redis --logfile /tmp/modellab-redis/redis.log
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { log "Redis did not start"; exit 1; }

# --- PostgreSQL ----------------------------------------------------------
pg_ok() { psql "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=2" -Atc 'select 1' >/dev/null 2>&1; }
if ! command -v psql >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt_install postgresql postgresql-client
fi
if ! pg_ok; then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$ver" ]; then
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    # The tests connect as postgres over TCP without a password.
    if ! grep -q '^host[[:space:]]\+all[[:space:]]\+postgres[[:space:]]\+127.0.0.1/32[[:space:]]\+trust' "$hba"; then
      log "allowing trust auth for postgres on 127.0.0.1 in $hba"
      $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    fi
    log "starting PostgreSQL $ver"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
      || $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload 2>/dev/null || true
    for _ in $(seq 1 100); do pg_ok && break; sleep 0.2; done
  fi
fi
pg_ok || { log "PostgreSQL is not reachable on 127.0.0.1:5432 as postgres"; exit 1; }

# --- Tools some tests drive ---------------------------------------------
if [ "${MODELLAB_BROWSER_TESTS:-on}" != "off" ] && ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium || log "chromium could not be installed; the browser test will fail"
fi
# nginx for the tests of deploy/nginx (a small Debian package unpacked under
# .cache/tools, nothing installed); the tests skip when it cannot be had.
./scripts/tools.sh nginx || log "nginx could not be fetched; the nginx tests will be skipped"
log "ready: redis $(redis-cli -h 127.0.0.1 -p 6379 info server | awk -F: '/^redis_version/{print $2}' | tr -d '\r'), $(psql "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" -Atc 'show server_version')"
