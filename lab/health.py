"""fab status: is every node up and answering, checked from where its clients are.

HTTP checks run in the client node (as a user's browser would); memcached and PostgreSQL
are checked from the first app server, the only kind of node they admit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lab.errors import LabError
from lab.probing import probe
from lab.targets import Target
from lab.topology import Topology


@dataclass
class NodeHealth:
    name: str
    role: str
    address: str
    healthy: bool
    services: dict[str, str] = field(default_factory=dict)  # service -> "ok" or the problem


def check(target: Target) -> list[NodeHealth]:
    topo = target.topo
    try:
        http = {r["url"]: r for r in probe(target, target.traffic_node(), *health_urls(topo))}
        backend = topo.apps[0]
        mc = {r["server"]: r
              for r in probe(target, backend, "memcached", *topo.memcached_servers())}
        db = probe(target, backend, "postgres", topo.db.address, str(topo.ports.postgres),
                   extra_env=db_password(target))
    except LabError as exc:
        return [NodeHealth(n.name, n.role, n.address, False, {"lab": str(exc)})
                for n in topo.nodes]

    report = []
    for node in topo.nodes:
        services = {}
        if node.role == "app":
            services["apache"] = http_problem(http[app_url(topo, node)], node.name)
            services["memcached"] = mc_problem(mc[f"{node.address}:{topo.ports.memcached}"])
        elif node.role == "balancer":
            services["nginx"] = http_problem(http[balancer_url(topo)], None)
        elif node.role == "db":
            services["postgres"] = "ok" if db["ok"] else db["error"]
        healthy = all(v == "ok" for v in services.values()) and node_up(target, node)
        report.append(NodeHealth(node.name, node.role, node.address, healthy, services))
    return report


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


def as_json(report: list[NodeHealth]) -> dict:
    return {"healthy": all(n.healthy for n in report), "nodes": [asdict(n) for n in report]}
