"""The lab's network on one machine, built the way Mininet builds hosts: one network
namespace per node, a veth pair from each to one bridge, and nothing in the root namespace
but the bridge and a guard route.

The root namespace never gets an address in the lab's subnet. While the lab exists an
``unreachable`` route for the subnet makes any stray connection from the root namespace
fail at once instead of leaving the machine by the default route.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from lab.errors import LabError
from lab.record import Record
from lab.topology import Node, Topology

GUARD_METRIC = 4242  # high: a real host-only network (lower metric) still wins


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def in_node(node: Node, argv: list[str]) -> list[str]:
    """The command line that runs argv inside the node's namespace."""
    return ["ip", "netns", "exec", node.namespace, *argv]


def host_link(node: Node) -> str:
    return f"lv-{node.name}"  # the root-side end of the node's veth pair (<= 15 chars)


def guard_route(topo: Topology) -> list[str]:
    return ["unreachable", str(topo.subnet), "metric", str(GUARD_METRIC)]


def namespaces() -> set[str]:
    out = ip("netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def link_exists(name: str) -> bool:
    return ip("link", "show", "dev", name, check=False).returncode == 0


def create(topo: Topology, record: Record) -> None:
    """Guard route, bridge, then one namespace per node with its address; recorded first."""
    record.add("route", " ".join(guard_route(topo)))
    if topo.subnet.with_prefixlen not in ip("route", "show", "type", "unreachable").stdout:
        ip("route", "add", *guard_route(topo))
    record.add("bridge", topo.bridge)
    if not link_exists(topo.bridge):
        ip("link", "add", topo.bridge, "type", "bridge")
    no_ipv6(topo.bridge)
    ip("link", "set", topo.bridge, "up")
    for node in topo.nodes:
        add_node(topo, node, record)


def add_node(topo: Topology, node: Node, record: Record) -> None:
    ns, link = node.namespace, host_link(node)
    record.add("namespace", ns)
    record.add("link", link)
    if ns not in namespaces():
        ip("netns", "add", ns)
    if not link_exists(link):
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
    no_ipv6(link)
    ip("link", "set", link, "master", topo.bridge, "up")
    ip("-n", ns, "addr", "replace", f"{node.address}/{topo.subnet.prefixlen}", "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "link", "set", "lo", "up")


def no_ipv6(link: str) -> None:
    """The root side of the lab carries no address at all, not even IPv6 link-local."""
    path = f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6"
    if os.path.exists(path):
        with open(path, "w") as knob:
            knob.write("1")


def pids_in(namespace: str) -> list[int]:
    out = ip("netns", "pids", namespace, check=False).stdout
    return [int(pid) for pid in out.split()]


def stop_processes(namespace: str, first: dict[int, int], grace: float = 10.0) -> None:
    """End the processes living in a lab namespace, and only those, by PID.

    ``first`` maps PIDs to the signal that stops that daemon cleanly (e.g. SIGINT for
    PostgreSQL's fast shutdown); a PID is signalled only if it lives in the namespace.
    Whatever is left gets SIGTERM, then SIGKILL after the grace period.
    """
    living = set(pids_in(namespace))
    for pid, sig in first.items():
        if pid in living:
            send(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and wait_some(namespace, first):
        time.sleep(0.1)
    for pid in pids_in(namespace):
        send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids_in(namespace) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids_in(namespace):
        send(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids_in(namespace) and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_some(namespace: str, watched: dict[int, int]) -> bool:
    """True while any of the watched daemons still lives in the namespace."""
    return bool(set(watched) & set(pids_in(namespace)))


def send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def destroy(record: Record) -> None:
    """Remove exactly what the record lists; things already gone are fine."""
    for ns in record.get("namespace"):
        if ns in namespaces():
            ip("netns", "del", ns)
    # Deleting a namespace takes its end of each veth pair, and the kernel then removes
    # our end on its own, a moment later: delete what is left, tolerating that race.
    for link in record.get("link") + record.get("bridge"):
        if link_exists(link):
            ip("link", "del", link, check=False)
        if link_exists(link):
            raise LabError(f"could not delete link {link}: see 'ip link show {link}'")
    for route in record.get("route"):
        while ip("route", "del", *route.split(), check=False).returncode == 0:
            pass
