#!/usr/bin/env bash
# The balancer: nginx round-robin over the app servers of the topology, with a shared
# zone (one rotation for all workers), X-Request-ID to the upstreams, upstream keep-alive,
# and an access log that names the upstream of every request. tcpdump for captures.
# shellcheck source=provision/common.sh
source "$(dirname "$0")/common.sh"
: "${LAB_APP_ADDRESSES:?}" "${LAB_APP_PORT:?}" "${LAB_HTTP_PORT:?}" "${LAB_SUBNET:?}"

role_packages balancer
node_dirs

NGINX="$LAB_NODE_DIR/nginx"     # nginx's prefix: pid, logs and temp paths all stay in here
mkdir -p "$NGINX/conf" "$NGINX/temp"
chown "$(web_user)" "$NGINX/temp"

upstream_servers() {
  local address
  for address in $LAB_APP_ADDRESSES; do
    printf '        server %s:%s;\n' "$address" "$LAB_APP_PORT"
  done
}
LAB_UPSTREAM_SERVERS=$(upstream_servers)
LAB_WEB_USER=$(web_user)
LAB_NGINX=$NGINX
export LAB_UPSTREAM_SERVERS LAB_WEB_USER LAB_NGINX

CONF="$NGINX/conf/nginx.conf"
changed=0
render "$LAB_TEMPLATES/nginx.conf" | install_content "$CONF" 644 && changed=1
nginx -t -q -p "$NGINX" -c "$CONF"

start_nginx=(nginx -p "$NGINX" -c "$CONF")
if [ "$changed" = 1 ] && pid_alive "$NGINX/nginx.pid"; then
  log "reloading nginx"
  if [ "$LAB_INIT" = systemd ]; then systemctl reload lab-nginx.service; else
    kill -HUP "$(cat "$NGINX/nginx.pid")"; fi
else
  ensure_service nginx "$NGINX/nginx.pid" QUIT "${start_nginx[@]}"
fi
log "nginx on $LAB_ADDRESS:$LAB_HTTP_PORT -> $LAB_APP_ADDRESSES"
