"""The provision scripts' zypper/systemd branch, run as Vagrant runs them on Leap 15.6 VMs.

Each VM is a stand-in (see leap.py): a chroot on an overlay of this machine with Debian's
tools hidden, stand-in zypper/rpm/systemctl that accept only Leap 15.6 package names and
record what they do, and daemons that are real processes with real pid files. Each test
runs the Vagrantfile's own provisioners for a machine (as Vagrant evaluated them), twice:
`vagrant up` then `vagrant provision`; the second run must change nothing.
"""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
from pathlib import Path

import leap
import pytest

from lab import topology

REPO = Path(__file__).resolve().parents[2]

# What each role installs on a fresh Leap box (rsync comes with the box: Vagrant needs it).
PACKAGES = {
    "db": {"postgresql-server", "postgresql-contrib", "gettext-runtime"},
    "app": {"apache2", "apache2-event", "apache2-devel", "memcached", "nftables",
            "gettext-runtime", "python311", "python311-devel", "python311-pip", "gcc"},
    "balancer": {"nginx", "tcpdump", "gettext-runtime"},
}
UNITS = {  # enabled lab units; the forking ones run a daemon with a pid file
    "db": {"lab-postgres.service"},
    "app": {"lab-memcached.service", "lab-apache.service", "lab-firewall.service"},
    "balancer": {"lab-nginx.service"},
}
CHANGES = ("wrote ", "installing ", "synced ", "starting ", "reloading ", "initdb ")


def test_shellcheck_is_clean():
    done = subprocess.run("shellcheck -x provision/*.sh", shell=True, cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def plan(plan_dumper):
    """Machine name -> its evaluated Vagrant config (default topology); "_dump" makes
    others, "_secrets" is the lab's secrets file on the host."""
    machines = {m["name"]: m for m in plan_dumper.dump()["machines"]}
    machines["_dump"] = lambda **env: {m["name"]: m for m in plan_dumper.dump(**env)["machines"]}
    machines["_secrets"] = plan_dumper.secrets
    return machines


def segments(records: list[dict], steps_per_run: int) -> list[list[dict]]:
    """Records grouped by run: each run is steps_per_run steps."""
    runs: list[list[dict]] = []
    for entry in records:
        if entry["tool"] == "step" and entry["index"] % steps_per_run == 0:
            runs.append([])
        if entry["tool"] != "step":
            runs[-1].append(entry)
    return runs


def unit_config(vm: leap.Vm, unit: str) -> dict[str, str]:
    config = {}
    for line in vm.path(f"/etc/systemd/system/{unit}").read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            config[key] = value
    return config


def assert_nothing_changed(run: list[dict], outputs: list[str]) -> None:
    assert not [r for r in run if r["tool"] == "zypper"], "a second run installed packages"
    changed = [r for r in run if r["tool"] == "systemctl" and
               (r.get("changed") or r["action"] in ("warning", "restart", "reload", "start",
                                                    "stop", "failed"))]
    assert not changed, changed
    assert not [r for r in run if r["tool"] in ("nginx", "memcached", "apachectl", "pg_ctl",
                                                "initdb", "mod_wsgi-express", "pip", "nft")
                and r.get("action") != "test"]
    for output in outputs:
        assert not [line for line in output.splitlines()
                    if any(word in line for word in CHANGES)], output


def provision_twice(plan, name: str, tmp_path: Path):
    topo = topology.load()
    node = next(n for n in topo.servers if n.name == name)
    vm = leap.Vm(tmp_path / name)
    steps = leap.steps_from_plan(plan[name])
    results = vm.run(steps + steps)
    for result in results:
        assert result["returncode"] == 0, f"{result['name']}: {result['output']}"
    first, second = segments(vm.records(), len(steps))
    warnings = [r for r in first + second if r["tool"] == "systemctl" and r["action"] == "warning"]
    assert not warnings, warnings  # e.g. a unit used without daemon-reload
    secrets = plan["_secrets"].read_text()
    for result in results:  # the lab's secrets never show in any output
        for line in secrets.splitlines():
            assert line.split("=", 1)[1] not in result["output"]
    return topo, node, vm, first, second, [r["output"] for r in results[len(steps):]]


def installed(run: list[dict]) -> set[str]:
    return {p for r in run if r["tool"] == "zypper" and r["action"] == "install"
            for p in r["requested"]}


def systemd_state(vm: leap.Vm) -> dict:
    return json.loads(vm.path("/var/lib/standin/systemd.json").read_text())


def enabled_units(vm: leap.Vm) -> set[str]:
    return set(systemd_state(vm)["enabled"])


def active_units(vm: leap.Vm) -> set[str]:
    return set(systemd_state(vm)["active"])


def assert_role_units(vm: leap.Vm, role: str) -> None:
    assert enabled_units(vm) == UNITS[role]
    # The firewall unit is for boot; provisioning applies the rules itself (nft -f).
    assert active_units(vm) == UNITS[role] - {"lab-firewall.service"}
    for unit in UNITS[role]:
        config = unit_config(vm, unit)
        assert config["WantedBy"] == "multi-user.target"
        executable = shlex.split(config["ExecStart"])[0]
        assert executable.startswith("/"), config["ExecStart"]
        if config.get("Type") == "forking":
            assert config["ExecReload"].endswith("-HUP $MAINPID")
            assert config["PIDFile"].startswith("/var/lib/django-lab/nodes/")


def test_db_on_leap(plan, tmp_path):
    topo, node, vm, first, second, outputs = provision_twice(plan, "db", tmp_path)
    assert installed(first) == PACKAGES["db"]
    assert_role_units(vm, "db")
    assert_nothing_changed(second, outputs)
    pgdata = vm.path("/var/lib/django-lab/nodes/db/pgdata")
    hba = (pgdata / "pg_hba.conf").read_text()
    assert sorted(line.split()[3] for line in hba.splitlines() if line.startswith("host")) == \
        sorted(f"{a.address}/32" for a in topo.apps)
    assert f"listen_addresses = '{node.address}'" in (pgdata / "lab.conf").read_text()
    secrets = vm.path("/var/lib/django-lab/secrets.env")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert secrets.stat().st_uid == 0
    assert secrets.read_text() == plan["_secrets"].read_text()
    psql = [r for r in first if r["tool"] == "psql"]
    assert {r["user"] for r in psql} == {"postgres"}
    assert any(r["password_given"] and "CREATE ROLE lab" in r["sql"] for r in psql)
    started = [r for r in first if r["tool"] == "pg_ctl"]
    assert len(started) == 1
    assert started[0]["settings"]["shared_preload_libraries"] == "pg_stat_statements"


@pytest.mark.parametrize("name", ["app1", "app2"])
def test_app_on_leap(plan, tmp_path, name):
    topo, node, vm, first, second, outputs = provision_twice(plan, name, tmp_path)
    assert installed(first) == PACKAGES["app"]
    assert_role_units(vm, "app")
    assert_nothing_changed(second, outputs)
    # Migrations and seeding: once, by the first app server only.
    django = [r["command"][0] for r in first if r["tool"] == "django"]
    assert django == (["migrate", "seed"] if node == topo.apps[0] else [])
    [setup] = [r for r in first if r["tool"] == "mod_wsgi-express"]
    argv = setup["argv"]
    assert (argv[argv.index("--user") + 1], argv[argv.index("--group") + 1]) == ("wwwrun", "www")
    assert argv[argv.index("--host") + 1] == node.address
    pip = [r for r in first if r["tool"] == "pip" and "mod_wsgi==6.1.1" in r["packages"]]
    assert pip and pip[0]["no_cache"]
    [memcached] = [r for r in first if r["tool"] == "memcached"]
    assert memcached["argv"][memcached["argv"].index("-l") + 1] == node.address
    assert "-U" in memcached["argv"] and memcached["argv"][memcached["argv"].index("-U") + 1] == "0"
    env_file = vm.path(f"/var/lib/django-lab/nodes/{name}/django.env")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert f"export LAB_MEMCACHED={','.join(topo.memcached_servers())}\n" in text
    assert "export LAB_CACHE_MODE=leases\n" in text
    assert "${" not in text
    assert any(r["tool"] == "nft" and r["action"] == "apply" for r in first)


def test_balancer_on_leap(plan, tmp_path):
    topo, node, vm, first, second, outputs = provision_twice(plan, "balancer", tmp_path)
    assert installed(first) == PACKAGES["balancer"]
    assert_role_units(vm, "balancer")
    assert_nothing_changed(second, outputs)
    [started] = [r for r in first if r["tool"] == "nginx" and r["action"] == "start"]
    assert started["upstreams"] == topo.backends()
    conf = vm.path("/var/lib/django-lab/nodes/balancer/nginx/conf/nginx.conf").read_text()
    assert "user nginx;" in conf  # Leap's nginx runs as nginx: a balancer has no wwwrun
    assert f"listen {node.address}:{topo.ports.http} default_server;" in conf
    assert not vm.path("/var/lib/django-lab/secrets.env").exists()  # it needs none


def test_balancer_reloads_when_the_apps_change(plan, tmp_path, topology_file):
    """From 3 to 4 app servers: nginx is reloaded (systemctl reload), not restarted."""
    vm = leap.Vm(tmp_path / "balancer")
    four = plan["_dump"](LAB_TOPOLOGY=str(topology_file(4)))["balancer"]
    steps = leap.steps_from_plan(plan["balancer"]) + leap.steps_from_plan(four)
    results = vm.run(steps)
    assert [r["returncode"] for r in results] == [0, 0], results
    before, after = segments(vm.records(), 1)
    reloads = [r for r in after if r["tool"] == "systemctl" and r["action"] == "reload"]
    assert [r["unit"] for r in reloads] == ["lab-nginx.service"]
    assert [r for r in after if r["tool"] == "nginx" and r["action"] == "reload"]
    assert not [r for r in after if r["tool"] == "systemctl" and
                r["action"] in ("restart", "stop", "start")]
    conf = vm.path("/var/lib/django-lab/nodes/balancer/nginx/conf/nginx.conf").read_text()
    assert conf.count("server 192.168.56.") == 4


def test_app_restarts_apache_only_when_its_settings_change(plan, tmp_path):
    """Another cache mode: django.env changes, Apache restarts, memcached stays."""
    vm = leap.Vm(tmp_path / "app2")
    off = plan["_dump"](LAB_CACHE_MODE="off")["app2"]
    steps = leap.steps_from_plan(plan["app2"])
    results = vm.run(steps + leap.steps_from_plan(off))
    assert all(r["returncode"] == 0 for r in results), results
    _, after = segments(vm.records(), len(steps))
    actions = [(r["action"], r["unit"]) for r in after if r["tool"] == "systemctl"
               and r["action"] in ("restart", "stop", "start", "reload")]
    assert actions == [("restart", "lab-apache.service")]
    assert "LAB_CACHE_MODE=off" in vm.path("/var/lib/django-lab/nodes/app2/django.env").read_text()


def test_the_standins_refuse_what_leap_refuses(tmp_path):
    """Debian names, a unit that runs a shell function, a reload without ExecReload."""
    vm = leap.Vm(tmp_path / "vm")
    unit = ("[Unit]\nDescription=x\n[Service]\nType=forking\nPIDFile=/run/x.pid\n"
            "ExecStart=start_postgres\n[Install]\nWantedBy=multi-user.target\n")
    oneshot = ("[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
               "[Install]\nWantedBy=multi-user.target\n")
    results = vm.run([
        leap.Step("debian name", inline="zypper --non-interactive install apache2-dev"),
        leap.Step("interactive", inline="zypper install nginx"),
        leap.Step("function", inline=f"printf '{unit}' > /etc/systemd/system/lab-x.service; "
                                     "systemctl daemon-reload; "
                                     "systemctl enable --now lab-x.service"),
        leap.Step("no reload", inline=f"printf '{oneshot}' > /etc/systemd/system/lab-y.service; "
                                      "systemctl daemon-reload; "
                                      "systemctl enable --now lab-y.service && "
                                      "systemctl reload lab-y.service"),
        leap.Step("python 3.6 only", inline="test ! -e /usr/bin/python3.11 && "
                                            "! command -v apt-get && ! command -v nginx"),
    ])
    codes = {r["name"]: (r["returncode"], r["output"]) for r in results}
    assert codes["debian name"][0] == 104
    assert "No provider of 'apache2-dev'" in codes["debian name"][1]
    assert codes["interactive"][0] != 0
    assert codes["function"][0] != 0 and "start_postgres" in codes["function"][1]
    assert codes["no reload"][0] != 0 and "reload is not applicable" in codes["no reload"][1]
    assert codes["python 3.6 only"][0] == 0, codes["python 3.6 only"][1]
