"""The Vagrantfile, as Vagrant itself reads it: valid, one VM per server node of the topology,
and every provisioner's environment exactly lab/provision.py's environment()."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from lab import remote, topology
from lab.provision import environment

REPO = Path(__file__).resolve().parents[2]

STATE, SRC, VENV = Path("/var/lib/django-lab"), Path("/vagrant"), Path("/opt/django-lab/venv")


@pytest.mark.parametrize("provider", ["libvirt", "virtualbox"])
def test_vagrant_validate(vagrant_run, tmp_path, provider):
    """Each provider's block is validated by its provider. VirtualBox is not installed here:
    a stand-in VBoxManage tells Vagrant it is 7.0 (all that validation asks it)."""
    stand_in = tmp_path / "bin" / "VBoxManage"
    stand_in.parent.mkdir()
    stand_in.write_text('#!/bin/sh\n[ "$1" = --version ] && echo 7.0.14r161095\n')
    stand_in.chmod(0o755)
    done = vagrant_run("validate", VAGRANT_DEFAULT_PROVIDER=provider,
                       PATH=f"{stand_in.parent}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    assert "validated successfully" in done.stdout
    status = vagrant_run("status", "--machine-readable", VAGRANT_DEFAULT_PROVIDER=provider,
                         PATH=f"{stand_in.parent}:{os.environ['PATH']}")
    assert f",db,provider-name,{provider}" in status.stdout


def machine_states(done: subprocess.CompletedProcess) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [line.split(",")[1] for line in done.stdout.splitlines()
            if line.split(",")[2:3] == ["state"]]


@pytest.mark.parametrize("apps", [2, 3, 4])
def test_status_lists_exactly_the_server_nodes(vagrant_run, topology_file, apps):
    path = topology_file(apps) if apps != 3 else topology.DEFAULT_PATH
    topo = topology.load(path)
    names = machine_states(vagrant_run("status", "--machine-readable", LAB_TOPOLOGY=str(path)))
    assert names == [n.name for n in topo.servers]  # db, app1..appN, balancer; no client
    assert topo.client.name not in names


@pytest.mark.parametrize("apps", [2, 3, 4])
def test_config_is_the_topology_and_environment(dump_plan, topology_file, vagrant_env, apps):
    path = topology_file(apps) if apps != 3 else topology.DEFAULT_PATH
    topo = topology.load(path)
    plan = dump_plan(LAB_TOPOLOGY=str(path))
    machines = plan["machines"]
    assert [m["name"] for m in machines] == [n.name for n in topo.servers]
    assert plan["no_parallel"], "libvirt would boot (and provision) the VMs in parallel"
    netmask = str(topo.subnet.netmask)
    for machine, node in zip(machines, topo.servers, strict=True):
        assert machine["box"] == "opensuse/Leap-15.6.x86_64"
        assert re.fullmatch(r"\d+(\.\d+)+", machine["box_version"] or ""), "box not pinned"
        assert machine["hostname"] == node.name
        private = [n for n in machine["networks"] if n["type"] == "private_network"]
        assert [(n["ip"], n["netmask"]) for n in private] == [(node.address, netmask)]
        assert ipaddress.IPv4Address(node.address) in ipaddress.IPv4Network("192.168.56.0/21")

        size = topo.sizes[node.role]
        assert machine["providers"]["libvirt"] == {"memory": size.memory, "cpus": size.cpus}
        assert sorted(machine["providers"]["virtualbox"]["customize"]) == sorted([
            ["pre-boot", "modifyvm", "id", "--memory", str(size.memory)],
            ["pre-boot", "modifyvm", "id", "--cpus", str(size.cpus)]])

        folders = [f for f in machine["synced_folders"] if not f["disabled"]]
        assert [(f["guestpath"], f["type"]) for f in folders] == [("/vagrant", "rsync")]
        for never in (".git/", ".vagrant/", "captures/", ".lab-secrets*"):
            assert never in folders[0]["rsync__exclude"]

        provs = machine["provisioners"]
        want_env = environment(topo, node, init="systemd", state=STATE, src=SRC, venv=VENV,
                               cache_mode="leases")
        role = provs[-1]
        assert (role["name"], role["type"], role["privileged"]) == (node.role, "shell", True)
        assert role["env"] == want_env
        assert role["env"] == remote.remote_environment(topo, node, "leases", remote.VAGRANT_SRC)
        assert f'"$LAB_SRC/provision/{node.role}.sh"' in role["inline"]
        assert (REPO / "provision" / f"{node.role}.sh").is_file()
        if node.role in ("db", "app"):  # the nodes that read the secrets get them first
            upload, install = provs[0], provs[1]
            assert len(provs) == 3
            assert (upload["type"], upload["source"]) == ("file", vagrant_env["LAB_SECRETS_FILE"])
            assert install["env"] == {"LAB_SECRETS": want_env["LAB_SECRETS"]}
            assert upload["destination"] in install["inline"]
        else:
            assert len(provs) == 1
    migrating = [m["name"] for m in machines if m["provisioners"][-1]["env"]["LAB_MIGRATE"] == "1"]
    assert migrating == [topo.apps[0].name]


def test_cache_mode_comes_from_the_environment(dump_plan, vagrant_run):
    plan = dump_plan(LAB_CACHE_MODE="off")
    assert {m["provisioners"][-1]["env"]["LAB_CACHE_MODE"] for m in plan["machines"]} == {"off"}
    done = vagrant_run("validate", LAB_CACHE_MODE="sometimes")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: LAB_CACHE_MODE=sometimes: choose one of off, local, shared, leases"]


def edited(path: Path, edit) -> Path:
    raw = yaml.safe_load(topology.DEFAULT_PATH.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


BAD_TOPOLOGIES = {
    "one app": (lambda t: t.update(apps=t["apps"][:1]), "apps: must be a list of 2 to 8"),
    "no db": (lambda t: t.pop("db"), "db: is missing"),
    "address twice": (lambda t: t["apps"][1].update(address=t["apps"][0]["address"]),
                      "apps[1].address: 192.168.56.11 is already app1's"),
    "name twice": (lambda t: t["db"].update(name="app1"), "db.name: app1 is used twice"),
    "outside the subnet": (lambda t: t["db"].update(address="10.0.0.5"),
                           "db.address: 10.0.0.5 is not a host address in 192.168.56.0/24"),
    "bad name": (lambda t: t["apps"][0].update(name="App 1"),
                 "apps[0].name: 'App 1' must be 1-10 lowercase letters or digits"),
    "bad address": (lambda t: t["balancer"].update(address="192.168.56.300"),
                    "balancer.address: '192.168.56.300' is not an IPv4 address"),
    "no memory": (lambda t: t["sizes"]["app"].pop("memory"), "sizes.app.memory: is missing"),
    "no apache": (lambda t: t.pop("apache"), "apache: is missing"),
}


@pytest.mark.parametrize("case", BAD_TOPOLOGIES)
def test_a_bad_topology_is_one_line_naming_the_field(vagrant_run, tmp_path, case):
    edit, field = BAD_TOPOLOGIES[case]
    path = edited(tmp_path / "topology.yaml", edit)
    done = vagrant_run("validate", LAB_TOPOLOGY=str(path))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert field in lines[0]
    # The Python tooling says the same about the same file.
    with pytest.raises(topology.TopologyError) as python_error:
        topology.load(path)
    assert field in str(python_error.value)


def test_invalid_yaml_is_one_line(vagrant_run, tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("apps: [\n  {name: app1\n")
    done = vagrant_run("validate", LAB_TOPOLOGY=str(path))
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1
    assert "topology.yaml: not valid YAML" in done.stderr


def test_secrets_are_made_once_mode_600_never_printed_never_committed(vagrant_run, dump_plan,
                                                                        vagrant_env):
    secrets = Path(vagrant_env["LAB_SECRETS_FILE"])
    assert not secrets.exists()
    first = vagrant_run("validate")
    content = secrets.read_text()
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in content.splitlines())
    assert set(values) == {"LAB_SECRET_KEY", "LAB_DB_PASSWORD"}
    assert len(values["LAB_SECRET_KEY"]) >= 50 and len(values["LAB_DB_PASSWORD"]) >= 24
    second = vagrant_run("status", "--machine-readable")
    assert secrets.read_text() == content  # kept for the life of the lab
    plan = dump_plan()
    shown = first.stdout + first.stderr + second.stdout + second.stderr + repr(plan)
    for value in values.values():
        assert value not in shown
    # The default file is gitignored and never rsynced to the VMs.
    ignored = subprocess.run(["git", "check-ignore", "-q", ".lab-secrets.env"], cwd=REPO)
    assert ignored.returncode == 0
    assert remote.VAGRANT_SECRETS.name == ".lab-secrets.env"


def test_a_second_lab_gets_new_secrets(vagrant_run, vagrant_env, tmp_path):
    first = tmp_path / "one.env"
    second = tmp_path / "two.env"
    vagrant_run("validate", LAB_SECRETS_FILE=str(first))
    vagrant_run("validate", LAB_SECRETS_FILE=str(second))
    assert first.read_text() != second.read_text()
