"""Other sizes of the lab from an edited topology file, and a clean 'fab down'."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from lab import demo, health, lifecycle, netns, paths, topology


def topology_with(tmp_path, count: int):
    raw = yaml.safe_load(topology.DEFAULT_PATH.read_text())
    raw["apps"] = [{"name": f"app{i}", "address": f"192.168.56.{10 + i}"}
                   for i in range(1, count + 1)]
    path = tmp_path / f"topology-{count}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("count", [2, 4])
def test_the_lab_runs_with_other_numbers_of_app_servers(lab_manager, tmp_path, count):
    lab = lab_manager.use(topology_with(tmp_path, count))
    assert all(n.healthy for n in health.check(lab))
    served = [r["served_by"] for r in demo.get(lab, *["/trivial"] * (3 * count))]
    order = [f"app{i}" for i in range(1, count + 1)]
    start = order.index(served[0])
    assert served == [order[(start + i) % count] for i in range(3 * count)]


def lab_processes() -> list[str]:
    """Processes whose network namespace is a lab namespace (should be none after down)."""
    return [f"{ns}:{pid}" for ns in netns.namespaces() if ns.startswith("lab-")
            for pid in netns.pids_in(ns)]


def test_down_leaves_nothing_behind_and_is_idempotent(lab_manager):
    lab = lab_manager.use()
    topo = lab.topo
    pids = [pid for node in topo.nodes for pid in netns.pids_in(node.namespace)]
    assert pids, "the lab should have daemons running before it is taken down"
    lifecycle.down(say=lambda *a: None)
    lab_manager.forget()
    lifecycle.down(say=lambda *a: None)  # a second time: nothing to do, no error

    assert not {n.namespace for n in topo.nodes} & netns.namespaces()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert topo.bridge not in links and "lv-" not in links
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert str(topo.subnet) not in routes
    assert not paths.STATE.exists()
    alive = [pid for pid in pids if _alive(pid)]
    assert alive == [], f"lab processes still running: {alive}"


def test_up_recovers_from_a_half_made_lab(lab_manager):
    topo = topology.load()
    lifecycle.down(say=lambda *a: None)
    lab_manager.forget()
    # A crash half-way: the network and one node exist, nothing else.
    record = lifecycle.Record()
    netns.create(topo, record)
    lab = lab_manager.use()
    assert all(n.healthy for n in health.check(lab))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False
