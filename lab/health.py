"""fab status: is every node up and answering, checked from where its clients are.

HTTP checks run in the client node (as a user's browser would); memcached and PostgreSQL
are checked from the first app server, the only kind of node they admit.

A node is ``healthy`` (every service ok), ``degraded`` (an app server whose memcached is
down but whose Django still serves pages from PostgreSQL: slower, not broken) or
``unhealthy``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from lab import paths
from lab.errors import LabError
from lab.probing import probe
from lab.targets import Target
from lab.topology import Topology


@dataclass
class NodeHealth:
    name: str
    role: str
    address: str
    healthy: bool  # every service ok
    services: dict[str, str] = field(default_factory=dict)  # service -> "ok" or the problem
    state: str = "healthy"  # "healthy", "degraded" or "unhealthy"
    service_states: dict[str, str] = field(default_factory=dict)  # service -> "up"/"down"

    @property
    def serving(self) -> bool:
        """Healthy or only degraded: its part of the site still answers."""
        return self.state != "unhealthy"


NOT_UP = "the lab is not up: run fab up"
INTERRUPTED = "the last fab up was interrupted: run fab up again"
UP_INTERRUPTED = paths.STATE / "up-interrupted"  # written by cli.up when Ctrl-C stops it


def ensure_up(target: Target) -> None:
    """One line, before anything else, when there is no lab (or only half of one)."""
    if UP_INTERRUPTED.exists():
        raise LabError(INTERRUPTED)
    if not node_up(target, target.traffic_node()):
        raise LabError(NOT_UP)


def check(target: Target) -> list[NodeHealth]:
    """Every node's health. Raises LabError (one line) when the lab is not up at all."""
    ensure_up(target)
    topo = target.topo
    try:
        http = {r["url"]: r for r in probe(target, target.traffic_node(), *health_urls(topo))}
        backend = topo.apps[0]
        mc = {r["server"]: r
              for r in probe(target, backend, "memcached", *topo.memcached_servers())}
        db = probe(target, backend, "postgres", topo.db.address, str(topo.ports.postgres),
                   extra_env=db_password(target))
    except LabError as exc:
        return [NodeHealth(n.name, n.role, n.address, False, {"lab": str(exc)}, "unhealthy",
                           {"lab": "down"}) for n in topo.nodes]

    report = []
    for node in topo.nodes:
        services = {}
        if node.role == "app":
            services["apache"] = app_problem(http[app_url(topo, node)], node.name)
            services["memcached"] = mc_problem(mc[f"{node.address}:{topo.ports.memcached}"])
        elif node.role == "balancer":
            services["nginx"] = http_problem(http[balancer_url(topo)], None)
        elif node.role == "db":
            services["postgres"] = "ok" if db["ok"] else db["error"]
        up = node_up(target, node)
        states = {name: "up" if problem == "ok" else "down"
                  for name, problem in services.items()}
        healthy = up and all(v == "up" for v in states.values())
        report.append(NodeHealth(node.name, node.role, node.address, healthy, services,
                                 node_state(up, node.role, states), states))
    return report


def node_state(up: bool, role: str, states: dict[str, str]) -> str:
    if up and all(v == "up" for v in states.values()):
        return "healthy"
    if up and role == "app" and states.get("apache") == "up":
        return "degraded"  # only its memcached is down: pages still come from PostgreSQL
    return "unhealthy"


def app_problem(result: dict, expected_node: str) -> str:
    """Apache is fine when Django answers and reaches PostgreSQL, even if its /health is
    503 because of the cache alone (that is memcached's problem, reported on its own)."""
    if not result["ok"] and result.get("status") == 503:
        try:
            checks = json.loads(result.get("body") or "")
        except ValueError:
            checks = {}
        if checks.get("db") == "ok" and checks.get("node") == expected_node:
            return "ok"
    return http_problem(result, expected_node)


def app_url(topo: Topology, node) -> str:
    return f"http://{node.address}:{topo.ports.app}/health"


def balancer_url(topo: Topology) -> str:
    return f"http://{topo.balancer.address}:{topo.ports.http}/health"


def health_urls(topo: Topology) -> list[str]:
    return ["http", balancer_url(topo), *(app_url(topo, app) for app in topo.apps)]


def http_problem(result: dict, expected_node: str | None) -> str:
    if not result["ok"]:
        return result.get("error") or f"HTTP {result['status']}"
    if expected_node and result["served_by"] != expected_node:
        return f"answered as {result['served_by']!r}"
    return "ok"


def mc_problem(result: dict) -> str:
    return "ok" if result["ok"] else result["error"]


def node_up(target: Target, node) -> bool:
    """The node itself answers (its namespace exists, or its VM accepts commands)."""
    try:
        return target.run(node, ["true"], timeout=30).returncode == 0
    except LabError:
        return False


def db_password(target: Target) -> dict[str, str]:
    """The DB password from the lab's secrets file, for the probe's connection."""
    try:
        lines = target.secrets.read_text().splitlines()
    except OSError:
        raise LabError(f"no secrets file {target.secrets}: is the lab up? (fab up)") from None
    for line in lines:
        key, _, value = line.partition("=")
        if key == "LAB_DB_PASSWORD":
            return {key: value}
    raise LabError(f"{target.secrets} has no LAB_DB_PASSWORD: run 'fab up' again")


def overall(report: list[NodeHealth]) -> str:
    """The lab's state: its worst node's."""
    for state in ("unhealthy", "degraded"):
        if any(n.state == state for n in report):
            return state
    return "healthy"


def as_json(report: list[NodeHealth]) -> dict:
    return {"healthy": all(n.healthy for n in report), "state": overall(report),
            "nodes": [asdict(n) for n in report]}
