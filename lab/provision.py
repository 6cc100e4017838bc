"""Runs the shell scripts in provision/ on the nodes, with the environment derived from the
topology. The Vagrantfile derives the same environment in Ruby (tests compare the two)."""

from __future__ import annotations

import json
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import netns, paths
from lab.errors import LabError
from lab.topology import Node, Topology

CACHE_MODES = ("off", "local", "shared", "leases")


def environment(topo: Topology, node: Node, *, init: str, state: Path, src: Path, venv: Path,
                cache_mode: str, test_hooks: bool = False) -> dict[str, str]:
    """Everything a provision script knows about the lab, as LAB_* variables."""
    apache, app_size = topo.apache, topo.sizes["app"]
    return {
        "LAB_NODE": node.name,
        "LAB_ROLE": node.role,
        "LAB_ADDRESS": node.address,
        "LAB_SUBNET": str(topo.subnet),
        "LAB_INIT": init,
        "LAB_STATE": str(state),
        "LAB_SRC": str(src),
        "LAB_VENV": str(venv),
        "LAB_SECRETS": str(state / "secrets.env"),
        "LAB_BALANCER_ADDRESS": topo.balancer.address,
        "LAB_APP_NAMES": " ".join(app.name for app in topo.apps),
        "LAB_APP_ADDRESSES": " ".join(app.address for app in topo.apps),
        "LAB_DB_ADDRESS": topo.db.address,
        "LAB_CLIENT_ADDRESS": topo.client.address,
        "LAB_HTTP_PORT": str(topo.ports.http),
        "LAB_APP_PORT": str(topo.ports.app),
        "LAB_MEMCACHED_PORT": str(topo.ports.memcached),
        "LAB_POSTGRES_PORT": str(topo.ports.postgres),
        "LAB_MEMCACHED_MB": str(app_size.memcached),
        "LAB_APACHE_PROCESSES": str(apache.processes),
        "LAB_APACHE_THREADS": str(apache.threads),
        "LAB_APACHE_MAX_CLIENTS": str(apache.max_clients),
        "LAB_PRODUCTS": str(topo.site.products),
        "LAB_CATEGORIES": str(topo.site.categories),
        "LAB_CACHE_MODE": cache_mode,
        # Only the tests turn this on: it lets a request slow the cache's read-then-set
        # down on purpose, to stage the stale-set race deterministically.
        "LAB_TEST_HOOKS": "1" if test_hooks else "0",
        # The first app server applies migrations and seeds, once the db is up.
        "LAB_MIGRATE": "1" if node == topo.apps[0] else "0",
    }


def write_secrets(path: Path) -> None:
    """A fresh SECRET_KEY and DB password per lab; mode 600, outside git."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(
        f"LAB_SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"LAB_DB_PASSWORD={secrets.token_urlsafe(24)}\n"
    )


def local_env(topo: Topology, node: Node, cache_mode: str) -> dict[str, str]:
    return environment(topo, node, init="direct", state=paths.STATE, src=paths.ROOT,
                       venv=paths.VENV, cache_mode=cache_mode, test_hooks=test_hooks_on())


def test_hooks_on() -> bool:
    """Chosen at 'fab up' time and kept in the lab's settings (tests only)."""
    try:
        return bool(json.loads(paths.LAB_SETTINGS.read_text()).get("test_hooks"))
    except (OSError, ValueError):
        return False


def run_script(topo: Topology, node: Node, cache_mode: str) -> str:
    """Run provision/<role>.sh inside the node's namespace; its output, or a LabError."""
    script = paths.PROVISION / f"{node.role}.sh"
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", **local_env(topo, node, cache_mode)}
    result = subprocess.run(netns.in_node(node, ["bash", str(script)]), env=env,
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        last = [line for line in output.splitlines() if line.strip()][-1:] or ["(no output)"]
        log = paths.NODES / node.name / "provision.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
        raise LabError(f"provisioning {node.name} failed: {last[0]} (full output: {log})")
    return output


def provision_all(topo: Topology, cache_mode: str, say=print) -> None:
    """db first, then the app servers side by side (app1 migrates and seeds), then the
    balancer: each step's services are up before the next step needs them."""
    say(run_script(topo, topo.db, cache_mode), end="")
    provision_apps(topo, cache_mode, say)
    say(run_script(topo, topo.balancer, cache_mode), end="")


def provision_apps(topo: Topology, cache_mode: str, say=print) -> None:
    """All app servers side by side: they share nothing but the database."""
    with ThreadPoolExecutor(max_workers=len(topo.apps)) as pool:
        for output in pool.map(lambda app: run_script(topo, app, cache_mode), topo.apps):
            say(output, end="")
