#!/usr/bin/env bash
# An app server: memcached (UDP off, reachable only from the app servers) and Apache +
# mod_wsgi in daemon mode serving django_site on this node's address. The first app server
# (LAB_MIGRATE=1) applies the migrations and seeds the catalogue.
# shellcheck source=provision/common.sh
source "$(dirname "$0")/common.sh"
: "${LAB_APP_ADDRESSES:?}" "${LAB_APP_PORT:?}" "${LAB_MEMCACHED_PORT:?}" "${LAB_SECRETS:?}"
: "${LAB_DB_ADDRESS:?}" "${LAB_POSTGRES_PORT:?}" "${LAB_BALANCER_ADDRESS:?}"
: "${LAB_MEMCACHED_MB:?}" "${LAB_APACHE_PROCESSES:?}" "${LAB_APACHE_THREADS:?}"
: "${LAB_APACHE_MAX_CLIENTS:?}" "${LAB_PRODUCTS:?}" "${LAB_CATEGORIES:?}"
LAB_CACHE_MODE="${LAB_CACHE_MODE:-leases}"
load_secrets

role_packages app
ensure_venv "$LAB_SRC/requirements/app.txt"
node_dirs

# --- memcached ---------------------------------------------------------------------------
MEMCACHED_RUN="$LAB_NODE_DIR/run/memcached"
install -d -o nobody -m 755 "$MEMCACHED_RUN"  # memcached writes its pid after dropping to nobody
ensure_service memcached "$MEMCACHED_RUN/memcached.pid" TERM \
  memcached -d -u nobody -l "$LAB_ADDRESS" -p "$LAB_MEMCACHED_PORT" -U 0 \
  -m "$LAB_MEMCACHED_MB" -c 4096 -P "$MEMCACHED_RUN/memcached.pid"

# Only the app servers may talk to memcached (it has no authentication of its own).
LAB_APP_SET=${LAB_APP_ADDRESSES// /, }
export LAB_APP_SET
apply_firewall "$LAB_TEMPLATES/app-firewall.nft"

# --- the Django site ---------------------------------------------------------------------
SITE="$LAB_NODE_DIR/site"
ENVFILE="$LAB_NODE_DIR/django.env"
changed=0
sync_tree "$LAB_SRC/django_site" "$SITE" && changed=1

memcached_servers() {
  local address list=""
  for address in $LAB_APP_ADDRESSES; do list="$list,$address:$LAB_MEMCACHED_PORT"; done
  echo "${list#,}"
}
LAB_MEMCACHED=$(memcached_servers)
export LAB_MEMCACHED
# Sourced by apachectl (as root) before it starts: the daemons inherit it. Mode 600.
render "$LAB_TEMPLATES/django.env" | install_content "$ENVFILE" 600 && changed=1
django() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  bash -c 'source "$1"; shift; exec "$@"' _ "$ENVFILE" "$LAB_VENV/bin/python" "$SITE/manage.py" "$@"
}

if [ "${LAB_MIGRATE:-0}" = 1 ]; then
  django migrate --noinput -v 0
  django seed --products "$LAB_PRODUCTS" --categories "$LAB_CATEGORIES"
fi

# --- Apache + mod_wsgi (daemon mode) -----------------------------------------------------
APACHE="$LAB_NODE_DIR/apache"
APACHE_PID="$LAB_NODE_DIR/run/apache.pid"
express_args=(
  "$SITE/labsite/wsgi.py" --server-root "$APACHE" --python-path "$SITE"
  --host "$LAB_ADDRESS" --port "$LAB_APP_PORT" --user "$(web_user)" --group "$(web_group)"
  --locale C.UTF-8 --processes "$LAB_APACHE_PROCESSES" --threads "$LAB_APACHE_THREADS"
  # Enough slots for nginx's kept-alive upstream connections, and a keep-alive longer than
  # nginx's (30 s) so Apache never closes one under nginx's feet: zero 502s under load.
  --max-clients "$LAB_APACHE_MAX_CLIENTS" --keep-alive-timeout 60
  # All of Apache's worker processes from the start, and never reaped as "spare": a reaped
  # child takes its kept-alive connections with it, and nginx, reusing one at that moment,
  # answers 502 ("upstream prematurely closed connection").
  --initial-workers 1.0 --minimum-spare-workers 0.25 --maximum-spare-workers 1.0
  --envvars-script "$ENVFILE" --log-directory "$LAB_NODE_DIR/log" --pid-file "$APACHE_PID"
  --server-mpm event
  # The daemon (as the web user) starts in this directory; the default, the directory
  # setup-server ran in, is the checkout, which that user may not be allowed to enter.
  --working-directory "$SITE"
)
printf '%s\n' "${express_args[@]}" | install_content "$LAB_NODE_DIR/apache.args" 644 &&
  changed=1
if [ "$changed" = 1 ] || [ ! -x "$APACHE/apachectl" ]; then
  "$LAB_VENV/bin/mod_wsgi-express" setup-server "${express_args[@]}" >/dev/null
fi
start_apache=("$APACHE/apachectl" start)
if [ "$changed" = 1 ] && pid_alive "$APACHE_PID"; then
  restart_service apache "$APACHE_PID" TERM "${start_apache[@]}"
else
  ensure_service apache "$APACHE_PID" TERM "${start_apache[@]}"
fi
log "apache on $LAB_ADDRESS:$LAB_APP_PORT, memcached on $LAB_ADDRESS:$LAB_MEMCACHED_PORT"
