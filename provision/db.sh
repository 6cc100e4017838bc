#!/usr/bin/env bash
# The db node: PostgreSQL listening on the db address only; pg_hba admits only the app
# servers, with scram-sha-256 and the lab's generated password.
# shellcheck source=provision/common.sh
source "$(dirname "$0")/common.sh"
: "${LAB_APP_ADDRESSES:?}" "${LAB_POSTGRES_PORT:?}" "${LAB_SECRETS:?}"
load_secrets

role_packages db
node_dirs

# Debian keeps the server binaries per major version; Leap in /usr/lib/postgresqlNN/bin.
PG_BIN=$(dirname "$(find /usr/lib/postgresql/*/bin/pg_ctl /usr/lib/postgresql*/bin/pg_ctl \
  2>/dev/null | sort -V | tail -n1)")
[ -x "$PG_BIN/pg_ctl" ] || die "no pg_ctl found: is the PostgreSQL server package installed?"
PGDATA="$LAB_NODE_DIR/pgdata"
LAB_PG_SOCKETS="$LAB_NODE_DIR/run/postgresql"
export LAB_PG_SOCKETS
pg() { runuser -u postgres -- "$@"; }

mkdir -p "$LAB_PG_SOCKETS"
chown postgres: "$LAB_PG_SOCKETS" "$LAB_NODE_DIR/log"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  log "initdb $PGDATA"
  install -d -o postgres -g postgres -m 700 "$PGDATA"
  pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth-local=peer --auth-host=reject \
    --encoding=UTF8 --locale=C.UTF-8 >"$LAB_NODE_DIR/log/initdb.log"
fi

changed=0
render "$LAB_TEMPLATES/postgresql.conf" | install_content "$PGDATA/lab.conf" 600 && changed=1
grep -q "^include_if_exists = 'lab.conf'" "$PGDATA/postgresql.conf" ||
  echo "include_if_exists = 'lab.conf'" >>"$PGDATA/postgresql.conf"
{
  echo "# Generated from topology.yaml: the app servers and nothing else."
  echo "local all postgres peer"
  for address in $LAB_APP_ADDRESSES; do
    echo "host lab lab $address/32 scram-sha-256"
  done
} | install_content "$PGDATA/pg_hba.conf" 600 && changed=1
chown postgres: "$PGDATA/lab.conf" "$PGDATA/pg_hba.conf"

start_postgres=(runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA"
  -l "$LAB_NODE_DIR/log/postgresql.log" -w -s start)
if [ "$changed" = 1 ] && pid_alive "$PGDATA/postmaster.pid"; then
  restart_service postgres "$PGDATA/postmaster.pid" INT "${start_postgres[@]}"
else
  ensure_service postgres "$PGDATA/postmaster.pid" INT "${start_postgres[@]}"
fi

psql_admin() {
  PGOPTIONS="-c client_min_messages=warning" pg psql -X -q -v ON_ERROR_STOP=1 -h "$LAB_PG_SOCKETS" -p "$LAB_POSTGRES_PORT" "$@"
}
wait_for "postgres to accept connections" psql_admin -d postgres -c "select 1" -o /dev/null
# The role's password follows the secrets file; the database and extension are made once.
psql_admin -d postgres -v pw="$LAB_DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE lab LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lab')
\gexec
ALTER ROLE lab PASSWORD :'pw';
SELECT 'CREATE DATABASE lab OWNER lab' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'lab')
\gexec
SQL
psql_admin -d lab -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
log "postgres ready on $LAB_ADDRESS:$LAB_POSTGRES_PORT"
