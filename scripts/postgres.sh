#!/usr/bin/env bash
# Installs (Debian's packages, with PgBouncer for the pooler tests) and starts a local PostgreSQL for the tests and benchmarks, and
# prints the admin URL on its last line: over TCP, or with `--socket` over the server's Unix socket.
# Idempotent; no systemd needed.
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
# Logins over the Unix socket, for the tests of that way in: the user running this script may log
# in as postgres (peer authentication through a user-name map; the first matching line counts).
hba=$(as_postgres "psql -qAt -p $port -c 'show hba_file'")
ident=$(as_postgres "psql -qAt -p $port -c 'show ident_file'")
for who in postgres "$(id -un)"; do
  $SUDO grep -q "^idse-test $who postgres$" "$ident" || echo "idse-test $who postgres" | $SUDO tee -a "$ident" >/dev/null
done
$SUDO grep -q "map=idse-test" "$hba" || $SUDO sed -i '1i local all postgres peer map=idse-test' "$hba"
as_postgres "psql -q -p $port -c 'select pg_reload_conf()'" >/dev/null
if [ "${1:-}" = "--socket" ]; then
  dir=$(as_postgres "psql -qAt -p $port -c 'show unix_socket_directories'" | cut -d, -f1)
  echo "postgres://postgres@${dir//\//%2F}:${port}/postgres"
else
  echo "postgres://postgres:idse-test@127.0.0.1:${port}/postgres"
fi
