"""The five-node lab, as designed: who can reach whom, the rotation, the shared cache."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from pathlib import Path

from lab import demo, health, netns, paths
from lab.health import db_password
from lab.probing import probe


def app_url(lab, app, path):
    return f"http://{app.address}:{lab.topo.ports.app}{path}"


def test_every_node_is_healthy(lab):
    report = health.check(lab)
    assert [n.name for n in report] == [n.name for n in lab.topo.nodes]
    assert all(n.healthy for n in report), [n for n in report if not n.healthy]


def test_db_admits_only_the_app_servers(lab):
    topo = lab.topo
    port = str(topo.ports.postgres)
    for app in topo.apps:
        assert probe(lab, app, "postgres", topo.db.address, port, extra_env=db_password(lab))["ok"]
    for outsider in (topo.balancer, topo.client):
        result = probe(lab, outsider, "postgres", topo.db.address, port,
                       extra_env=db_password(lab))
        assert not result["ok"]
        assert "no pg_hba.conf entry" in result["error"]


def test_memcached_admits_only_the_app_servers(lab):
    topo = lab.topo
    servers = topo.memcached_servers()
    from_app = probe(lab, topo.apps[-1], "memcached", *servers)
    assert all(r["ok"] for r in from_app)
    for outsider in (topo.client, topo.balancer):
        refused = probe(lab, outsider, "memcached", *servers)
        assert [r["ok"] for r in refused] == [False] * len(servers)
        assert all("refused" in r["error"].lower() for r in refused)


def test_root_namespace_has_no_way_into_the_lab(lab):
    subnet = str(lab.topo.subnet)
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True)
    assert subnet.rsplit(".", 1)[0] not in addresses.stdout
    route = subprocess.run(["ip", "route", "get", lab.topo.balancer.address],
                           capture_output=True, text=True)
    assert route.returncode != 0 or route.stdout.startswith("unreachable")


def test_sequential_requests_rotate_over_the_app_servers(lab):
    served = [r["served_by"] for r in demo.get(lab, *["/trivial"] * 30)]
    order = [app.name for app in lab.topo.apps]
    assert set(served) == set(order)
    for previous, current in zip(served, served[1:], strict=False):
        assert order.index(current) == (order.index(previous) + 1) % len(order), served


def test_a_miss_on_one_server_is_a_hit_on_the_next(lab):
    first, second = demo.miss_then_hit(lab, console=_quiet())
    assert (first["cache"], second["cache"]) == ("MISS", "HIT")
    assert first["served_by"] != second["served_by"]


def test_a_write_through_one_server_is_read_through_the_others(lab):
    topo = lab.topo
    product = random.randint(1, topo.site.products)
    writer, *readers = topo.apps
    for reader in readers:  # warm every server's view of the page first
        probe(lab, topo.client, "http", app_url(lab, reader, f"/products/{product}/"))
    price = f"{random.randint(100, 99999) / 100:.2f}"
    wrote = probe(lab, topo.client, "post", app_url(lab, writer, f"/products/{product}/update"),
                  f"price={price}")
    assert wrote["ok"], wrote
    for reader in readers:
        (read,) = probe(lab, topo.client, "http", app_url(lab, reader, f"/products/{product}/"))
        assert read["served_by"] == reader.name
        assert price in read["body"]
        assert read["version"] == str(json.loads(wrote["body"])["version"])


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


def test_secrets_are_per_lab_private_and_outside_git(lab):
    from lab import paths

    mode = paths.SECRETS.stat().st_mode & 0o777
    assert mode == 0o600
    assert not paths.SECRETS.is_relative_to(paths.ROOT)
    values = dict(line.split("=", 1) for line in paths.SECRETS.read_text().splitlines())
    assert set(values) == {"LAB_SECRET_KEY", "LAB_DB_PASSWORD"}
    assert all(len(value) >= 32 for value in values.values())
    tracked = subprocess.run(["git", "grep", "-l", values["LAB_DB_PASSWORD"]], cwd=paths.ROOT,
                             capture_output=True, text=True)
    assert tracked.stdout == ""


# HTTPS is out of the lab's scope (plain HTTP inside a private network): these stay.
HTTPS_CHECKS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def test_django_deploy_checks_are_clean_but_for_https(lab):
    from lab import paths

    app = lab.topo.apps[0]
    node_dir = paths.NODES / app.name
    script = (f'source {node_dir}/django.env && exec {paths.VENV}/bin/python '
              f'{node_dir}/site/manage.py check --deploy')
    done = lab.run(app, ["bash", "-c", script])
    found = set(re.findall(r"\((security\.\w+)\)", done.stdout + done.stderr))
    assert found <= HTTPS_CHECKS, done.stdout + done.stderr
    assert "DEBUG" not in done.stdout + done.stderr


def test_app_daemons_work_in_the_site_directory(lab):
    """Not in the checkout the lab was started from: the web user the daemons run as may
    not be allowed to enter it (a clone in a mode-700 directory, or under /root)."""
    for app in lab.topo.apps:
        daemons = [pid for pid in netns.pids_in(app.namespace)
                   if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"(wsgi:")]
        assert daemons, f"no mod_wsgi daemon process in {app.name}"
        assert {os.readlink(f"/proc/{pid}/cwd") for pid in daemons} == {
            str(paths.NODES / app.name / "site")}
