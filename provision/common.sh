#!/usr/bin/env bash
# Sourced by every role script. The same code provisions the local lab (LAB_INIT=direct:
# daemons started here with pid files under the node's state directory) and the VMs
# (LAB_INIT=systemd: the same commands wrapped in units). Idempotent: a second run changes
# nothing and says "unchanged".
#
# Input is the environment (the tooling and the Vagrantfile derive it from topology.yaml):
#   LAB_NODE LAB_ROLE LAB_ADDRESS LAB_SUBNET LAB_INIT LAB_STATE LAB_SRC LAB_VENV LAB_SECRETS
#   LAB_BALANCER_ADDRESS LAB_APP_NAMES LAB_APP_ADDRESSES LAB_DB_ADDRESS LAB_CLIENT_ADDRESS
#   LAB_HTTP_PORT LAB_APP_PORT LAB_MEMCACHED_PORT LAB_POSTGRES_PORT ... (see each role script)
set -euo pipefail

for var in LAB_NODE LAB_ROLE LAB_ADDRESS LAB_INIT LAB_STATE LAB_SRC LAB_VENV; do
  if [ -z "${!var:-}" ]; then
    echo "provision: $var is not set; run through 'fab up' or 'vagrant provision'" >&2
    exit 2
  fi
done

LAB_NODE_DIR="$LAB_STATE/nodes/$LAB_NODE"
LAB_TEMPLATES="$LAB_SRC/provision/templates"
export LAB_NODE_DIR LAB_TEMPLATES

log() { printf '[%s] %s\n' "$LAB_NODE" "$*"; }
die() { printf '[%s] error: %s\n' "$LAB_NODE" "$*" >&2; exit 1; }

# --- packages --------------------------------------------------------------------------

# want_packages --apt NAME... --zypper NAME...: install what is missing, nothing else.
want_packages() {
  local apt=() zypper=() list=none
  for arg in "$@"; do
    case "$arg" in
      --apt) list=apt ;;
      --zypper) list=zypper ;;
      *) if [ "$list" = apt ]; then apt+=("$arg"); else zypper+=("$arg"); fi ;;
    esac
  done
  if command -v apt-get >/dev/null 2>&1; then
    apt_install "${apt[@]}"
  elif command -v zypper >/dev/null 2>&1; then
    zypper_install "${zypper[@]}"
  else
    die "no apt-get or zypper here: provision on Debian/Ubuntu or openSUSE Leap"
  fi
}

# role_packages ROLE: everything a role needs, per distro. One list for the role scripts
# and for host.sh (which installs all roles at once for the local lab).
role_packages() {
  case "$1" in
    balancer) want_packages --apt nginx-light tcpdump rsync gettext-base \
                            --zypper nginx tcpdump rsync gettext-runtime ;;
    app) want_packages --apt apache2 apache2-dev memcached nftables rsync gettext-base \
                             python3-venv python3-dev gcc \
                       --zypper apache2 apache2-event apache2-devel memcached nftables rsync \
                                gettext-runtime \
                                python311 python311-devel python311-pip gcc ;;
    db) want_packages --apt postgresql postgresql-contrib rsync gettext-base \
                      --zypper postgresql-server postgresql-contrib rsync gettext-runtime ;;
    *) die "unknown role $1" ;;
  esac
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # Keep package scripts from starting distro services on our ports (80, 5432, 11211).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
  fi
  # A fresh machine has no package lists yet: update once and try again.
  apt_get install "${missing[@]}" || { apt_get update && apt_get install "${missing[@]}"; }
}

apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q \
    --no-install-recommends "$@"
}

zypper_install() {
  local missing=()
  for pkg in "$@"; do
    rpm -q "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  zypper --non-interactive --quiet install --no-recommends "${missing[@]}"
}

# The interpreter for the venv: Debian's own python3 (not a pyenv one under /root, which
# mod_wsgi's unprivileged daemons cannot read); Leap's /usr/bin/python3 is 3.6, so 3.11 there.
venv_python() {
  local candidate
  for candidate in /usr/bin/python3.11 /usr/bin/python3; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  die "no /usr/bin/python3.11: install python3 (apt) or python311 (zypper)"
}

# ensure_venv REQUIREMENTS: one venv per machine, rebuilt only when the pins change.
ensure_venv() {
  local requirements="$1" stamp="$LAB_VENV/.requirements.sha256" want
  # The stamp covers every requirements file: tools.txt includes app.txt, so a host's
  # tools venv also serves the app servers of the local lab.
  want=$(cat "$LAB_SRC/requirements/"*.txt | sha256sum | cut -d' ' -f1)
  if [ -x "$LAB_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "installing the venv $LAB_VENV from $(basename "$requirements")"
  mkdir -p "$(dirname "$LAB_VENV")"
  [ -x "$LAB_VENV/bin/python" ] || "$(venv_python)" -m venv "$LAB_VENV"
  "$LAB_VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  # --no-cache-dir: a cached mod_wsgi wheel may be built against another Python.
  "$LAB_VENV/bin/pip" install -q --disable-pip-version-check --no-cache-dir -r "$requirements"
  echo "$want" >"$stamp"
}

# --- files -----------------------------------------------------------------------------

# render TEMPLATE: substitute only ${LAB_*} variables, so nginx's $vars stay as they are.
render() {
  local names
  names=$(compgen -e | grep '^LAB_' | sed 's/.*/${&}/' | tr '\n' ' ')
  envsubst "$names" <"$1"
}

# install_content DEST MODE < content: replace DEST only if it differs. Returns 1 if unchanged.
install_content() {
  local dest="$1" mode="$2" tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$dest"
  log "wrote $dest"
}

# sync_tree SRC DEST: mirror a directory (the site code) into place; 1 if nothing changed.
sync_tree() {
  local changes
  mkdir -p "$2"
  changes=$(rsync -a --delete --itemize-changes --exclude __pycache__ "$1/" "$2/")
  [ -n "$changes" ] || return 1
  log "synced $2"
}

# The per-lab secrets (LAB_SECRET_KEY, LAB_DB_PASSWORD), generated at 'fab up', mode 600.
load_secrets() {
  [ -r "$LAB_SECRETS" ] || die "no secrets file $LAB_SECRETS: run 'fab up' (it generates one)"
  set -a
  # shellcheck source=/dev/null
  source "$LAB_SECRETS"
  set +a
}

node_dirs() {
  mkdir -p "$LAB_NODE_DIR/run" "$LAB_NODE_DIR/log"
  chmod 755 "$LAB_STATE" "$LAB_STATE/nodes" "$LAB_NODE_DIR"
}

# The unprivileged account daemons drop to, and its group: Debian www-data; openSUSE wwwrun
# (from apache2) or, on a Leap balancer that has only nginx, nginx.
web_account() {
  local pair
  for pair in www-data:www-data wwwrun:www nginx:nginx; do
    if id -u "${pair%%:*}" >/dev/null 2>&1; then echo "$pair"; return; fi
  done
  die "no www-data, wwwrun or nginx account: is the web server package installed?"
}
web_user() { local account; account=$(web_account); echo "${account%%:*}"; }
web_group() { local account; account=$(web_account); echo "${account#*:}"; }

# --- services --------------------------------------------------------------------------

pid_alive() { [ -s "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

# ensure_service NAME PIDFILE STOPSIGNAL CMD...: CMD daemonizes and writes PIDFILE.
# direct: run CMD unless the pid file names a live process. systemd: a Type=forking unit.
ensure_service() {
  local name="$1" pidfile="$2" signal="$3"
  shift 3
  if [ "$LAB_INIT" = systemd ]; then
    systemd_unit "$name" "$pidfile" "$signal" "$@"
    return
  fi
  if pid_alive "$pidfile"; then
    log "$name running (pid $(head -n1 "$pidfile"))"
    return
  fi
  log "starting $name"
  "$@"
  wait_for "$name pid file" pid_alive "$pidfile"
}

# stop_service NAME PIDFILE SIGNAL: stop and wait until the process is gone.
stop_service() {
  local name="$1" pidfile="$2" signal="$3" pid
  if [ "$LAB_INIT" = systemd ]; then
    systemctl stop "lab-$name.service"
    return
  fi
  pid_alive "$pidfile" || return 0
  pid=$(head -n1 "$pidfile")
  log "stopping $name (pid $pid)"
  kill "-$signal" "$pid"
  wait_for "$name to exit" not_alive "$pid"
}

restart_service() {
  local name="$1" pidfile="$2" signal="$3"
  shift 3
  if [ "$LAB_INIT" = systemd ]; then
    systemd_unit "$name" "$pidfile" "$signal" "$@"
    systemctl restart "lab-$name.service"
    return
  fi
  stop_service "$name" "$pidfile" "$signal"
  ensure_service "$name" "$pidfile" "$signal" "$@"
}

not_alive() { ! kill -0 "$1" 2>/dev/null; }

# wait_for WHAT CHECK ARGS...: poll CHECK for up to 30 s (the daemons answer in well under 2 s).
wait_for() {
  local what="$1" i
  shift
  for ((i = 0; i < 300; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  die "timed out waiting for $what"
}

systemd_unit() {
  local name="$1" pidfile="$2" signal="$3" unit exe kill
  shift 3
  # systemd runs ExecStart itself, without this shell: a program with its path, no function.
  exe=$(type -P "$1") || die "lab-$name: '$1' is not a program that systemd can run"
  kill=$(type -P kill) || die "no kill program for ExecReload"
  unit="/etc/systemd/system/lab-$name.service"
  if install_content "$unit" 644 <<EOF
[Unit]
Description=lab $name on $LAB_NODE
After=network-online.target
Wants=network-online.target

[Service]
Type=forking
PIDFile=$pidfile
ExecStart=$exe ${*:2}
ExecReload=$kill -HUP \$MAINPID
KillSignal=SIG$signal
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF
  then
    systemctl daemon-reload
  fi
  systemctl enable --now --quiet "lab-$name.service"
}

# apply_firewall RULESET: nftables rules for this node (inside its namespace in the local
# lab; a oneshot unit on a VM so they survive a reboot).
apply_firewall() {
  local ruleset="$LAB_NODE_DIR/firewall.nft" changed=0
  render "$1" | install_content "$ruleset" 644 || changed=$?
  if [ "$LAB_INIT" = systemd ]; then
    if install_content /etc/systemd/system/lab-firewall.service 644 <<EOF
[Unit]
Description=lab firewall on $LAB_NODE
Before=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f $ruleset

[Install]
WantedBy=multi-user.target
EOF
    then
      systemctl daemon-reload
    fi
    systemctl enable --quiet lab-firewall.service
  fi
  if [ "$changed" = 0 ] || ! nft list table inet lab >/dev/null 2>&1; then
    nft -f "$ruleset"
    log "firewall applied"
  fi
}
