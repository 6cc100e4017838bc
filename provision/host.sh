#!/usr/bin/env bash
# Installs the local lab on this Debian/Ubuntu machine: every role's packages (the five
# nodes share this machine), the tools (wrk, tshark, shellcheck, Vagrant for its static
# checks) and the venv. Run by 'make install'; idempotent.
# Usage: provision/host.sh VENV
set -euo pipefail
LAB_SRC=$(cd "$(dirname "$0")/.." && pwd)
LAB_VENV="${1:?usage: provision/host.sh VENV}"
LAB_NODE=host LAB_ROLE=host LAB_ADDRESS=none LAB_INIT=direct LAB_STATE=/nonexistent
export LAB_SRC LAB_VENV LAB_NODE LAB_ROLE LAB_ADDRESS LAB_INIT LAB_STATE
# shellcheck source=provision/common.sh
source "$LAB_SRC/provision/common.sh"

command -v apt-get >/dev/null 2>&1 || die "the local lab needs Debian or Ubuntu (apt-get); for other hosts see the README's Vagrant section"
for role in db app balancer; do role_packages "$role"; done
want_packages --apt iproute2 iptables iputils-ping curl wrk tshark shellcheck vagrant vagrant-libvirt openssh-server
ensure_venv "$LAB_SRC/requirements/tools.txt"

# The analyser's hot loop, compiled (lab/analysis/_walk.pyx; its Python twin in dissect.py
# runs where this is not built). Rebuilt whenever the .pyx is newer than the module.
build_walker() {
  local pyx="$LAB_SRC/lab/analysis/_walk.pyx" work="$LAB_VENV/.walker-build" python="$LAB_VENV/bin/python"
  local module include
  module="${pyx%.pyx}$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
  [ "$module" -nt "$pyx" ] && return 0
  log "compiling the analyser's pcap walker ($(basename "$module"))"
  include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  mkdir -p "$work"
  "$LAB_VENV/bin/cython" -3 "$pyx" -o "$work/walk.c"
  gcc -shared -fPIC -O2 -I"$include" "$work/walk.c" -o "$work/walk.so"
  mv "$work/walk.so" "$module"  # (built aside: a failed build leaves the last module)
}
build_walker
log "installed: packages and $LAB_VENV"
