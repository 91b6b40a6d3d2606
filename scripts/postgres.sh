#!/usr/bin/env bash
# Installs (Debian's packages, with PgBouncer for the pooler tests) and starts a local PostgreSQL for the tests and benchmarks, and
# prints the admin URL on its last line. Idempotent; no systemd needed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi; }
# pgbouncer: the pooler tests put it in front of this server, as Supabase puts its pooler.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! [ -x /usr/sbin/pgbouncer ]; then
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq postgresql pgbouncer >&2
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -n1)
if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main"' | grep -q .; then
  $SUDO pg_createcluster "$ver" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
# A password for TCP logins from the tests (local test server only).
as_postgres "psql -q -p $port -c \"ALTER USER postgres PASSWORD 'idse-test'\"" >&2
echo "postgres://postgres:idse-test@127.0.0.1:${port}/postgres"
