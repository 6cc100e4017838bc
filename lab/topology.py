"""The lab's topology: one YAML file, validated once, read by everything else.

A bad file is refused with one line naming the field, e.g.
``topology.yaml: apps[1].address: '192.168.56.300' is not an IPv4 address``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab.errors import LabError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "topology.yaml"

MIN_APPS, MAX_APPS = 2, 8
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")  # short: it becomes part of interface names
BRIDGE_RE = re.compile(r"^[a-z][a-z0-9]{0,14}$")


class TopologyError(LabError):
    """The topology file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # balancer | app | db | client
    address: str

    @property
    def namespace(self) -> str:
        return f"lab-{self.name}"


@dataclass(frozen=True)
class Ports:
    http: int
    app: int
    memcached: int
    postgres: int


@dataclass(frozen=True)
class Size:
    memory: int
    cpus: int
    memcached: int = 0


@dataclass(frozen=True)
class Apache:
    processes: int
    threads: int
    max_clients: int


@dataclass(frozen=True)
class Site:
    products: int
    categories: int


@dataclass(frozen=True)
class Topology:
    path: Path
    subnet: ipaddress.IPv4Network
    bridge: str
    ports: Ports
    balancer: Node
    apps: tuple[Node, ...]
    db: Node
    client: Node
    sizes: dict[str, Size]
    apache: Apache
    site: Site
    results_warn_mb: int = 500  # fab loadtest warns when captures/ grows past this

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node, in provisioning order: db, apps, balancer, then the client."""
        return (self.db, *self.apps, self.balancer, self.client)

    @property
    def servers(self) -> tuple[Node, ...]:
        """The nodes that run services (all but the client)."""
        return (self.db, *self.apps, self.balancer)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        names = ", ".join(n.name for n in self.nodes)
        raise LabError(f"no node named {name!r} in {self.path.name}; nodes are: {names}")

    def name_of(self, address: str) -> str:
        for node in self.nodes:
            if node.address == address:
                return node.name
        return address

    def memcached_servers(self) -> list[str]:
        return [f"{app.address}:{self.ports.memcached}" for app in self.apps]

    def backends(self) -> list[str]:
        """The upstream servers in the balancer's order, as address:port."""
        return [f"{app.address}:{self.ports.app}" for app in self.apps]


def load(path: Path | str = DEFAULT_PATH) -> Topology:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TopologyError(f"{path}: no such file; copy topology.yaml from the repo") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise TopologyError(f"{path.name}: not valid YAML{where}; fix the syntax") from None
    return _Parser(path).topology(raw)


class _Parser:
    """Walks the raw YAML, naming the field in every error."""

    def __init__(self, path: Path):
        self.path = path
        self.fields: list[tuple[str, Node]] = []  # each node with its place in the file

    def fail(self, field: str, problem: str) -> TopologyError:
        return TopologyError(f"{self.path.name}: {field}: {problem}")

    def mapping(self, value, field: str, keys: set[str], optional: set[str] = frozenset()):
        if not isinstance(value, dict):
            raise self.fail(field, "must be a mapping")
        for key in keys - value.keys():
            raise self.fail(f"{field}.{key}" if field else key, "is missing")
        for key in value.keys() - keys - optional:
            raise self.fail(f"{field}.{key}" if field else str(key), "unknown field")
        return value

    def integer(self, value, field: str, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(field, f"{value!r} must be an integer from {low} to {high}")
        return value

    def topology(self, raw) -> Topology:
        top = self.mapping(
            raw, "", {"network", "ports", "balancer", "apps", "db", "client", "sizes",
                      "apache", "site"}, optional={"results"},
        )
        subnet, bridge = self.network(top["network"])
        apps = top["apps"]
        if not isinstance(apps, list) or not MIN_APPS <= len(apps) <= MAX_APPS:
            raise self.fail("apps", f"must be a list of {MIN_APPS} to {MAX_APPS} app servers")
        topo = Topology(
            path=self.path,
            subnet=subnet,
            bridge=bridge,
            ports=self.ports(top["ports"]),
            balancer=self.node(top["balancer"], "balancer", "balancer", subnet),
            apps=tuple(self.node(a, f"apps[{i}]", "app", subnet) for i, a in enumerate(apps)),
            db=self.node(top["db"], "db", "db", subnet),
            client=self.node(top["client"], "client", "client", subnet),
            sizes=self.sizes(top["sizes"]),
            apache=self.apache(top["apache"]),
            site=self.site(top["site"]),
            results_warn_mb=self.results(top.get("results", {"warn_mb": 500})),
        )
        self.unique(topo)
        return topo

    def network(self, raw):
        net = self.mapping(raw, "network", {"subnet", "bridge"})
        try:
            subnet = ipaddress.IPv4Network(str(net["subnet"]))
        except ValueError:
            raise self.fail("network.subnet", f"{net['subnet']!r} is not an IPv4 network") from None
        if not subnet.is_private:
            raise self.fail("network.subnet", f"{subnet} is not a private range")
        if not BRIDGE_RE.match(str(net["bridge"])):
            raise self.fail("network.bridge", "must be 1-15 lowercase letters or digits")
        return subnet, net["bridge"]

    def ports(self, raw) -> Ports:
        ports = self.mapping(raw, "ports", {"http", "app", "memcached", "postgres"})
        values = {k: self.integer(v, f"ports.{k}", 1, 65535) for k, v in ports.items()}
        if len(set(values.values())) != len(values):
            raise self.fail("ports", "each service needs its own port")
        return Ports(**values)

    def node(self, raw, field: str, role: str, subnet) -> Node:
        node = self.mapping(raw, field, {"name", "address"})
        name = node["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.fail(f"{field}.name", f"{name!r} must be 1-10 lowercase letters or digits")
        try:
            address = ipaddress.IPv4Address(str(node["address"]))
        except ValueError:
            raise self.fail(f"{field}.address",
                            f"{node['address']!r} is not an IPv4 address") from None
        if address not in subnet or address in (subnet.network_address,
                                                subnet.broadcast_address):
            raise self.fail(f"{field}.address", f"{address} is not a host address in {subnet}")
        parsed = Node(name=name, role=role, address=str(address))
        self.fields.append((field, parsed))
        return parsed

    def sizes(self, raw) -> dict[str, Size]:
        sizes = self.mapping(raw, "sizes", {"balancer", "app", "db"})
        out = {}
        for role, value in sizes.items():
            extra = {"memcached"} if role == "app" else set()
            size = self.mapping(value, f"sizes.{role}", {"memory", "cpus"} | extra)
            out[role] = Size(
                memory=self.integer(size["memory"], f"sizes.{role}.memory", 256, 65536),
                cpus=self.integer(size["cpus"], f"sizes.{role}.cpus", 1, 64),
                memcached=self.integer(size.get("memcached", 0), f"sizes.{role}.memcached",
                                       0 if role != "app" else 16, 4096),
            )
        return out

    def apache(self, raw) -> Apache:
        apache = self.mapping(raw, "apache", {"processes", "threads", "max_clients"})
        return Apache(
            processes=self.integer(apache["processes"], "apache.processes", 1, 32),
            threads=self.integer(apache["threads"], "apache.threads", 1, 64),
            max_clients=self.integer(apache["max_clients"], "apache.max_clients", 1, 1024),
        )

    def site(self, raw) -> Site:
        site = self.mapping(raw, "site", {"products", "categories"})
        products = self.integer(site["products"], "site.products", 1, 1_000_000)
        categories = self.integer(site["categories"], "site.categories", 1, products)
        return Site(products=products, categories=categories)

    def results(self, raw) -> int:
        results = self.mapping(raw, "results", {"warn_mb"})
        return self.integer(results["warn_mb"], "results.warn_mb", 1, 1_000_000)

    def unique(self, topo: Topology) -> None:
        names: dict[str, str] = {}
        addresses: dict[str, str] = {}
        for field, node in self.fields:
            if node.name in names:
                raise self.fail(f"{field}.name", f"{node.name} is used twice")
            if node.address in addresses:
                raise self.fail(f"{field}.address",
                                f"{node.address} is already {addresses[node.address]}'s")
            names[node.name] = field
            addresses[node.address] = node.name
