"""The topology file: the default is valid, and every kind of mistake names its field."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from lab import paths, topology
from lab.provision import environment


def default_raw() -> dict:
    return yaml.safe_load(topology.DEFAULT_PATH.read_text())


def write(tmp_path, raw) -> str:
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_topology_is_the_article_s_architecture():
    topo = topology.load()
    assert topo.balancer.address == "192.168.56.10"
    assert [a.address for a in topo.apps] == ["192.168.56.11", "192.168.56.12", "192.168.56.13"]
    assert topo.db.address == "192.168.56.20"
    assert topo.client.address == "192.168.56.100"
    assert [n.role for n in topo.nodes] == ["db", "app", "app", "app", "balancer", "client"]


@pytest.mark.parametrize("count", [2, 4, 8])
def test_two_to_eight_app_servers(tmp_path, count):
    raw = default_raw()
    raw["apps"] = [{"name": f"app{i}", "address": f"192.168.56.{30 + i}"}
                   for i in range(1, count + 1)]
    topo = topology.load(write(tmp_path, raw))
    assert len(topo.apps) == count
    assert topo.backends()[-1] == f"192.168.56.{30 + count}:8000"


BROKEN = [
    (lambda r: r["apps"].__setitem__(1, {"name": "app2", "address": "192.168.56.300"}),
     "apps[1].address: '192.168.56.300' is not an IPv4 address"),
    (lambda r: r.__setitem__("apps", r["apps"][:1]), "apps: must be a list of 2 to 8"),
    (lambda r: r["apps"].extend({"name": f"x{i}", "address": f"192.168.56.{40 + i}"}
                                for i in range(6)), "apps: must be a list of 2 to 8"),
    (lambda r: r["db"].__setitem__("address", "10.0.0.5"),
     "db.address: 10.0.0.5 is not a host address in 192.168.56.0/24"),
    (lambda r: r["db"].__setitem__("address", "192.168.56.11"),
     "db.address: 192.168.56.11 is already app1's"),
    (lambda r: r["apps"][2].__setitem__("name", "app1"), "apps[2].name: app1 is used twice"),
    (lambda r: r["ports"].__setitem__("http", 70000), "ports.http: 70000 must be an integer"),
    (lambda r: r["ports"].__setitem__("app", 80), "ports: each service needs its own port"),
    (lambda r: r.pop("balancer"), "balancer: is missing"),
    (lambda r: r["balancer"].__setitem__("adress", "x"), "balancer.adress: unknown field"),
    (lambda r: r["apps"][0].__setitem__("name", "App 1"), "apps[0].name: 'App 1' must be"),
    (lambda r: r["site"].__setitem__("products", "many"), "site.products: 'many' must be"),
    (lambda r: r["network"].__setitem__("subnet", "8.8.8.0/24"),
     "network.subnet: 8.8.8.0/24 is not a private range"),
]


@pytest.mark.parametrize(("damage", "message"), BROKEN)
def test_a_broken_file_is_refused_naming_the_field(tmp_path, damage, message):
    raw = default_raw()
    damage(raw)
    with pytest.raises(topology.TopologyError) as refused:
        topology.load(write(tmp_path, raw))
    assert str(refused.value).startswith(f"topology.yaml: {message}")


def test_not_yaml_at_all(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("apps: [unclosed\n")
    with pytest.raises(topology.TopologyError, match=r"not valid YAML \(line \d+\)"):
        topology.load(path)


def test_fab_refuses_a_broken_file_with_one_line(tmp_path):
    raw = default_raw()
    raw["apps"][0]["address"] = "nonsense"
    path = write(tmp_path, raw)
    fab = paths.VENV / "bin" / "fab"
    done = subprocess.run([str(fab), "up"], cwd=paths.ROOT, capture_output=True, text=True,
                          env={"LAB_TOPOLOGY": str(path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: topology.yaml: apps[0].address: 'nonsense' is not an IPv4 address"]
    assert "Traceback" not in done.stdout + done.stderr
    assert sys.executable  # the test ran in the lab's venv, the one fab uses


def test_provision_environment_follows_the_topology():
    topo = topology.load()
    env = environment(topo, topo.apps[0], init="direct", state=paths.STATE, src=paths.ROOT,
                      venv=paths.VENV, cache_mode="shared")
    assert env["LAB_APP_ADDRESSES"] == "192.168.56.11 192.168.56.12 192.168.56.13"
    assert env["LAB_MIGRATE"] == "1"
    assert env["LAB_ADDRESS"] == "192.168.56.11"
    other = environment(topo, topo.apps[1], init="direct", state=paths.STATE, src=paths.ROOT,
                        venv=paths.VENV, cache_mode="shared")
    assert other["LAB_MIGRATE"] == "0"
