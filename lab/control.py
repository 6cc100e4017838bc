"""Breaking and changing a running lab, for class: stop and start one service, switch the
cache mode, give a node's link a network delay."""

from __future__ import annotations

from lab import provision
from lab.errors import LabError
from lab.probing import probe
from lab.targets import Target
from lab.topology import Node

SERVICES = {"app": ("apache", "memcached"), "db": ("postgres",), "balancer": ("nginx",),
            "client": ()}


def check_service(node: Node, service: str) -> None:
    known = SERVICES[node.role]
    if service not in known:
        choices = ", ".join(known) or "none: it only sends traffic"
        raise LabError(f"{node.name} runs no {service!r}; its services: {choices}")


def stop(target: Target, node_name: str, service: str) -> str:
    node = target.topo.node(node_name)
    check_service(node, service)
    return target.stop_service(node, service)


def start(target: Target, node_name: str, service: str) -> str:
    node = target.topo.node(node_name)
    check_service(node, service)
    pid = running_pid(target, node, service)
    if pid is not None:
        return f"{service} on {node.name} is already running (pid {pid}): nothing to start"
    return target.start_service(node, service)


def running_pid(target: Target, node: Node, service: str) -> int | None:
    """The daemon's PID if it runs in the local lab's node (remote targets: None, their
    start is idempotent and says what it did)."""
    from lab import lifecycle, netns
    from lab.targets import LocalTarget

    if not isinstance(target, LocalTarget):
        return None
    pid = lifecycle.daemon_pid(node.name, service)
    return pid if pid is not None and pid in netns.pids_in(node.namespace) else None


def check_mode(mode: str) -> None:
    if mode not in provision.CACHE_MODES:
        raise LabError(f"cache mode {mode!r}: choose one of {', '.join(provision.CACHE_MODES)}")


def switch_cache(target: Target, mode: str, say=print) -> None:
    """Redeploy the app servers' settings with another cache mode; no data is lost. Every
    memcached is flushed: entries cached under another mode cannot be trusted in this one
    (in 'local' mode a server keeps pages another server has since invalidated)."""
    check_mode(mode)
    target.set_cache_mode(mode, say=say)
    flushed = probe(target, target.topo.apps[0], "flush", *target.topo.memcached_servers())
    failed = [r["server"] for r in flushed if not r["ok"]]
    if failed:
        raise LabError(f"could not flush memcached on {', '.join(failed)}: see fab status")
    say(f"cache mode is now {mode}; every memcached flushed")


def netem(target: Target, node_name: str, delay_ms: float | None) -> str:
    """Add a delay to the node's lab link, or clear it (None): tc netem where the kernel
    has it, else a userspace delayer (see lab/netem.py). Returns a line saying which."""
    from lab import netem as delay

    node = target.topo.node(node_name)
    if delay_ms is None:
        return delay.clear(target, node)
    return delay.apply(target, node, delay_ms)
