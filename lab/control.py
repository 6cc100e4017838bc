"""Breaking and changing a running lab, for class: stop and start one service, switch the
cache mode, give a node's link a network delay."""

from __future__ import annotations

import shlex

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
    return target.start_service(node, service)


def switch_cache(target: Target, mode: str, say=print) -> None:
    """Redeploy the app servers' settings with another cache mode; no data is lost. Every
    memcached is flushed: entries cached under another mode cannot be trusted in this one
    (in 'local' mode a server keeps pages another server has since invalidated)."""
    if mode not in provision.CACHE_MODES:
        raise LabError(f"cache mode {mode!r}: choose one of {', '.join(provision.CACHE_MODES)}")
    target.set_cache_mode(mode, say=say)
    flushed = probe(target, target.topo.apps[0], "flush", *target.topo.memcached_servers())
    failed = [r["server"] for r in flushed if not r["ok"]]
    if failed:
        raise LabError(f"could not flush memcached on {', '.join(failed)}: see fab status")
    say(f"cache mode is now {mode}; every memcached flushed")


def netem(target: Target, node_name: str, delay_ms: float | None) -> str:
    """Delay every packet leaving the node's lab interface (tc netem), or clear it."""
    node = target.topo.node(node_name)
    if delay_ms is not None and not 0 < delay_ms <= 10_000:
        raise LabError(f"--delay {delay_ms}: give milliseconds from 0 to 10000")
    # The interface that carries the node's lab address: eth0 in a namespace, eth1 on a VM.
    find = f"ip -o -4 addr show to {shlex.quote(node.address)} | cut -d' ' -f2"
    if delay_ms is None:
        action = 'tc qdisc del dev "$dev" root 2>/dev/null || true'
        said = f"{node.name}: no added delay"
    else:
        action = f'tc qdisc replace dev "$dev" root netem delay {delay_ms:g}ms'
        said = f"{node.name}: every packet it sends waits {delay_ms:g} ms (tc netem)"
    result = target.run(node, ["sh", "-c", f'dev=$({find}); [ -n "$dev" ] && {action}'])
    if result.returncode != 0:
        raise LabError(f"tc on {node.name} failed: {result.stderr.strip() or 'no interface'}")
    return said
