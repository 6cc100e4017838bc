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
log "installed: packages and $LAB_VENV"
