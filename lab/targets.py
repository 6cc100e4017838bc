"""Where the lab runs. Every fab task talks to a Target, so the same tasks drive:

- ``local``: the five nodes as network namespaces on this machine (the default);
- ``vagrant``: five openSUSE VMs made by the Vagrantfile (see lab/remote.py);
- ``ssh``: existing servers listed in an inventory file (see lab/remote.py).

A target runs commands *on a node* (for the local lab: inside its namespace), starts
long-running ones (captures, load), and fetches files from a node. Traffic always starts
at ``traffic_node()``: the client namespace locally, the host itself for VMs.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab import netns, paths
from lab.errors import LabError
from lab.topology import Node, Topology


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Target:
    name = "abstract"
    env_in_argv = True  # remote targets pass variables on the remote command line
    secrets = paths.SECRETS  # the lab's secrets file on this machine

    def __init__(self, topo: Topology):
        self.topo = topo

    def argv(self, node: Node, argv: list[str]) -> list[str]:
        """The local command line that runs argv on the node."""
        raise NotImplementedError

    def run(self, node: Node, argv: list[str], *, extra_env: dict[str, str] | None = None,
            timeout: float | None = 120) -> Result:
        """Run argv on the node, with extra environment variables set there."""
        env = None
        if extra_env and self.env_in_argv:
            argv = ["env", *(f"{k}={v}" for k, v in extra_env.items()), *argv]
        elif extra_env:
            env = {**os.environ, **extra_env}  # not on the command line: ps would show it
        done = subprocess.run(self.argv(node, argv), cwd=paths.ROOT, capture_output=True,
                              text=True, timeout=timeout, env=env)
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, node: Node, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.argv(node, argv), cwd=paths.ROOT, **kwargs)

    def python(self, node: Node) -> list[str]:
        """How to start the lab's Python on the node, with the lab package importable."""
        return [str(paths.VENV / "bin" / "python")]

    def fetch(self, node: Node, remote: Path, local: Path) -> None:
        raise NotImplementedError

    def traffic_node(self) -> Node:
        return self.topo.client

    def interface(self, node: Node) -> str:
        """The node's interface on the lab network (captures listen there)."""
        return "eth0"

    def capture_path(self, local: Path) -> Path:
        """Where a capture destined for ``local`` is written on the balancer node."""
        return Path("/var/tmp") / local.name

    def collect_capture(self, node: Node, local: Path) -> None:
        """Bring a finished capture from the node to ``local``."""
        self.fetch(node, self.capture_path(local), local)

    def cache_mode(self) -> str:
        """The cache mode the lab was brought up with."""
        from lab import lifecycle

        return lifecycle.settings().get("cache_mode", "unknown")

    def stop_service(self, node: Node, service: str) -> str:
        raise NotImplementedError

    def start_service(self, node: Node, service: str) -> str:
        raise NotImplementedError

    def set_cache_mode(self, mode: str, say=print) -> None:
        """Redeploy the app servers with another cache mode (data kept)."""
        raise NotImplementedError

    def up(self, cache_mode: str, say=print) -> None:
        """Build (or bring back) the lab's nodes and provision them."""
        raise NotImplementedError

    def down(self, say=print) -> None:
        raise NotImplementedError


class LocalTarget(Target):
    """The lab's nodes are network namespaces on this machine; files are shared."""

    name = "local"
    env_in_argv = False

    def argv(self, node: Node, argv: list[str]) -> list[str]:
        if node.namespace not in netns.namespaces():
            raise LabError(f"node {node.name} has no namespace {node.namespace}: "
                           "is the lab up? (fab up)")
        return netns.in_node(node, argv)

    def fetch(self, node: Node, remote: Path, local: Path) -> None:
        if remote != local:
            local.write_bytes(remote.read_bytes())

    def capture_path(self, local: Path) -> Path:
        return local  # the namespaces share this machine's files

    def collect_capture(self, node: Node, local: Path) -> None:
        pass

    def up(self, cache_mode: str, say=print) -> None:
        from lab import lifecycle

        lifecycle.up(self.topo, cache_mode=cache_mode, say=say)

    def down(self, say=print) -> None:
        from lab import lifecycle

        lifecycle.down(say=say)

    def stop_service(self, node: Node, service: str) -> str:
        from lab import lifecycle

        return lifecycle.stop_service(node, service)

    def start_service(self, node: Node, service: str) -> str:
        """Provisioning is idempotent: running the node's script again starts what is
        stopped and changes nothing else."""
        from lab import provision

        provision.run_script(self.topo, node, self.cache_mode())
        return f"{service} on {node.name} started"

    def set_cache_mode(self, mode: str, say=print) -> None:
        from lab import lifecycle, provision

        lifecycle.save_settings({**lifecycle.settings(), "cache_mode": mode})
        provision.provision_apps(self.topo, mode, say=say)


def get(topo: Topology, name: str | None = None) -> Target:
    """The target named by --target or LAB_TARGET; 'local' unless Vagrant VMs are running."""
    name = name or os.environ.get("LAB_TARGET") or detect()
    if name == "local":
        return LocalTarget(topo)
    if name in ("vagrant", "ssh"):
        from lab import remote  # only what a remote target needs (paramiko) loads here

        return remote.target(topo, name)
    raise LabError(f"--target {name!r}: choose local, vagrant or ssh")


def detect() -> str:
    """'vagrant' when this checkout's Vagrant machines exist, else 'local'."""
    machines = paths.ROOT / ".vagrant" / "machines"
    if any(machines.glob("*/*/id")):
        return "vagrant"
    return "local"
