"""fab up / fab down: build the lab from the topology, or remove every trace of it."""

from __future__ import annotations

import json
import shutil
import signal
import time

from lab import netns, paths, provision
from lab.errors import LabError
from lab.record import Record
from lab.topology import Node, Topology

# Each daemon's pid file under its node's state directory, and the signal that stops it
# cleanly (PostgreSQL: SIGINT is its fast shutdown; SIGTERM would wait for every client).
PIDFILES = {
    "nginx": ("nginx/nginx.pid", signal.SIGQUIT),
    "apache": ("run/apache.pid", signal.SIGTERM),
    "memcached": ("run/memcached/memcached.pid", signal.SIGTERM),
    "postgres": ("pgdata/postmaster.pid", signal.SIGINT),
}


def up(topo: Topology, cache_mode: str = "leases", say=print, test_hooks: bool = False) -> float:
    """Bring the lab up; returns the seconds it took. A leftover lab is removed first."""
    if cache_mode not in provision.CACHE_MODES:
        raise LabError(f"--cache {cache_mode!r}: choose one of {', '.join(provision.CACHE_MODES)}")
    check_root()
    start = time.monotonic()
    if paths.RECORD.exists() or paths.STATE.exists():
        say("a previous lab is still here: taking it down first")
        down(say=say)
    record = Record()
    netns.create(topo, record)
    say(f"network: {len(topo.nodes)} namespaces on bridge {topo.bridge}, guard route "
        f"for {topo.subnet}")
    provision.write_secrets(paths.SECRETS)
    save_settings({"cache_mode": cache_mode, "topology": str(topo.path),
                   "test_hooks": test_hooks})
    provision.provision_all(topo, cache_mode, say=say)
    return time.monotonic() - start


def down(say=print) -> None:
    """Stop every lab process (by PID, only those in lab namespaces), then remove the
    namespaces, links, bridge, guard route and state. Safe to run any number of times."""
    check_root()
    record = Record()
    for ns in reversed(record.get("namespace")):
        netns.stop_processes(ns, daemon_pids(ns))
    netns.destroy(record)
    if paths.STATE.exists():
        shutil.rmtree(paths.STATE)
    say("lab is down: no namespace, link, route, process or state left")


def daemon_pids(namespace: str) -> dict[int, int]:
    """PID -> stop signal of every daemon whose pid file is in the node's directory."""
    node = namespace.removeprefix("lab-")
    pids = {}
    for service, (_, sig) in PIDFILES.items():
        pid = daemon_pid(node, service)
        if pid is not None:
            pids[pid] = sig
    return pids


def daemon_pid(node: str, service: str) -> int | None:
    try:
        return int((paths.NODES / node / PIDFILES[service][0]).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_service(node: Node, service: str, timeout: float = 30) -> str:
    """Stop one daemon by the PID in its pid file, if that PID lives in the node."""
    pid = daemon_pid(node.name, service)
    if pid is None or pid not in netns.pids_in(node.namespace):
        return f"{service} on {node.name} is not running"
    netns.send(pid, PIDFILES[service][1])
    deadline = time.monotonic() + timeout
    while pid in netns.pids_in(node.namespace):
        if time.monotonic() > deadline:
            raise LabError(f"{service} on {node.name} (pid {pid}) did not stop in {timeout:g} s")
        time.sleep(0.05)
    return f"{service} on {node.name} stopped (pid {pid})"


def check_root() -> None:
    import os

    if os.geteuid() != 0:
        raise LabError("the local lab makes network namespaces: run as root (sudo fab ...)")


def save_settings(settings: dict) -> None:
    paths.STATE.mkdir(parents=True, exist_ok=True)
    paths.LAB_SETTINGS.write_text(json.dumps(settings))


def settings() -> dict:
    try:
        return json.loads(paths.LAB_SETTINGS.read_text())
    except (OSError, ValueError):
        raise LabError("the lab is not up: run 'fab up' first") from None
