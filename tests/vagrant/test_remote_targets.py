"""The vagrant and ssh targets (lab/remote.py) against a real sshd, in a network namespace of
the test's own (see conftest.SshBox): run, argv, popen and its signals, fetch, python, the
repo and secrets upload, up's checks, down; and the inventory's one-line errors."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lab import probing, remote, topology
from lab.errors import LabError
from lab.remote import Host, Inventory, SshTarget, VagrantTarget

REPO = Path(__file__).resolve().parents[2]
TOPO = topology.load()


# --- no SSH needed ------------------------------------------------------------------------------


def test_remote_command_uses_sudo_and_keeps_env_off_the_command_line():
    secret = "s3cr3t-value"
    as_user = remote.remote_command(Host("db", "h", user="vagrant"), ["id", "-un"],
                                    {"LAB_DB_PASSWORD": secret})
    assert as_user.startswith("sudo -n -- sh -c ")
    assert secret not in as_user
    as_root = remote.remote_command(Host("db", "h", user="root"), ["id", "-un"])
    assert as_root == "id -un"
    assert remote.env_script({"A": "it's $x"}) == b"A='it'\"'\"'s $x'\n"
    with pytest.raises(LabError, match="not valid"):
        remote.env_script({"A B": "x"})


def test_target_names():
    assert isinstance(remote.target(TOPO, "vagrant"), VagrantTarget)
    with pytest.raises(LabError, match="choose local, vagrant or ssh"):
        remote.target(TOPO, "cloud")


def write_inventory(tmp_path: Path, raw) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def good_inventory(key: Path) -> dict:
    return {"user": "lab", "identity_file": str(key),
            "hosts": {n.name: f"10.0.0.{i + 1}" for i, n in enumerate(TOPO.servers)}}


def with_(change):
    def apply(raw):
        change(raw)
        return raw
    return apply


BAD_INVENTORIES = {
    "not yaml": ("hosts: [\n", "inventory.yaml: not valid YAML (line"),
    "not a mapping": ("- a\n- b\n", "inventory.yaml: must be a mapping"),
    "unknown field": (with_(lambda r: r.update(users="x")), "inventory.yaml: users: unknown field"),
    "no hosts": (with_(lambda r: r.pop("hosts")), "inventory.yaml: hosts: is missing"),
    "unknown node": (with_(lambda r: r["hosts"].update(app9="10.0.0.9")),
                     "inventory.yaml: hosts.app9: no node 'app9' in topology.yaml"),
    "node missing": (with_(lambda r: r["hosts"].pop("app3")),
                     "inventory.yaml: hosts.app3: is missing"),
    "bad port": (with_(lambda r: r["hosts"].update(db={"host": "10.0.0.1", "port": "ssh"})),
                 "inventory.yaml: hosts.db.port: 'ssh' must be a port number"),
    "no host": (with_(lambda r: r["hosts"].update(db={"port": 22})),
                "inventory.yaml: hosts.db.host: is missing"),
    "host field typo": (with_(lambda r: r["hosts"].update(db={"hots": "x"})),
                        "inventory.yaml: hosts.db.hots: unknown field"),
    "same server twice": (with_(lambda r: r["hosts"].update(app2=r["hosts"]["app1"])),
                          "inventory.yaml: hosts.app2: 10.0.0.2:22 is already app1's"),
    "missing key": (with_(lambda r: r.update(identity_file="/nonexistent/key")),
                    "inventory.yaml: identity_file: /nonexistent/key does not exist"),
    "relative src": (with_(lambda r: r.update(src="lab/src")),
                     "inventory.yaml: src: lab/src must be an absolute directory"),
    "empty user": (with_(lambda r: r.update(user="")), "inventory.yaml: user: '' must be"),
}


@pytest.mark.parametrize("case", BAD_INVENTORIES)
def test_a_bad_inventory_is_one_line_naming_the_field(tmp_path, case):
    key = tmp_path / "key"
    key.write_text("not really a key")
    raw, message = BAD_INVENTORIES[case]
    path = write_inventory(tmp_path, raw if isinstance(raw, str) else raw(good_inventory(key)))
    with pytest.raises(LabError) as error:
        SshTarget(TOPO, path)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(message), str(error.value)


def test_a_missing_inventory_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_INVENTORY", str(tmp_path / "nowhere.yaml"))
    with pytest.raises(LabError, match="copy inventory.example.yaml to inventory.yaml"):
        remote.target(TOPO, "ssh")


def test_the_example_inventory_is_valid(tmp_path):
    raw = yaml.safe_load((REPO / "inventory.example.yaml").read_text())
    raw.pop("identity_file", None)  # a path on the reader's machine
    inventory = Inventory.load(write_inventory(tmp_path, raw), TOPO)
    assert set(inventory.hosts) >= {n.name for n in TOPO.servers}


# --- against a real sshd --------------------------------------------------------------------


@pytest.fixture
def ssh_target(ssh_box, tmp_path):
    """An SshTarget on the box (built and used inside its network namespace)."""
    made = []

    def make(**fields) -> SshTarget:
        target = SshTarget(TOPO, ssh_box.inventory(**fields))
        made.append(target)
        return target

    yield make
    for target in made:
        target.close()


def test_ssh_run_argv_and_exit_status(ssh_box, ssh_target):
    with ssh_box.inside():
        target = ssh_target()
        db, app1 = TOPO.db, TOPO.apps[0]
        assert target.run(db, ["id", "-un"]).stdout == "root\n"
        result = target.run(app1, ["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
        # The OpenSSH client line for the same node, and host keys accepted on first use.
        done = subprocess.run(target.argv(app1, ["printf", "%s|", "a b", "$HOME"]),
                              capture_output=True, text=True, timeout=30)
        assert done.stdout == "a b|$HOME|", done.stderr
        assert f"[127.0.0.1]:{ssh_box.ports['app1']} ssh-ed25519" in \
            ssh_box.known_hosts.read_text()


def test_ssh_extra_env_travels_by_stdin_not_by_the_command_line(ssh_box, ssh_target):
    value = "p@ss w'rd $x \"y\" zq9secret"
    with ssh_box.inside():
        target = ssh_target()
        result = target.run(TOPO.apps[0], ["sh", "-c", 'printf %s "$LAB_DB_PASSWORD"; ps -eo args'],
                            extra_env={"LAB_DB_PASSWORD": value})
        assert result.stdout.startswith(value)
        assert "zq9secret" not in result.stdout[len(value):]  # no process shows it


def test_ssh_fetch(ssh_box, ssh_target, tmp_path):
    source = ssh_box.base / "capture.bin"
    source.write_bytes(os.urandom(3 << 20))
    source.chmod(0o600)
    with ssh_box.inside():
        target = ssh_target()
        target.fetch(TOPO.balancer, source, tmp_path / "out" / "capture.bin")
        assert (tmp_path / "out" / "capture.bin").read_bytes() == source.read_bytes()
        with pytest.raises(LabError, match="fetching .* from balancer failed: .*No such file"):
            target.fetch(TOPO.balancer, ssh_box.base / "missing.pcap", tmp_path / "x.pcap")
        assert not (tmp_path / "x.pcap").exists()


def test_ssh_popen_forwards_signals_and_ends_with_the_local_process(ssh_box, ssh_target):
    script = "trap 'echo got INT >&2; exit 3' INT; echo ready >&2; while :; do sleep 0.1; done"
    pidfile = ssh_box.base / "sleeper.pid"
    with ssh_box.inside():
        target = ssh_target()
        proc = target.popen(TOPO.balancer, ["bash", "-c", script], stderr=subprocess.PIPE,
                            text=True)
        assert proc.stderr.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)  # what the load test does to stop tcpdump
        _, err = proc.communicate(timeout=20)
        assert (proc.returncode, err.strip()) == (3, "got INT")

        sleeper = target.popen(TOPO.balancer, ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"])
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        sleeper.kill()  # the local ssh dies: the remote command must not outlive it
        sleeper.wait()
        deadline = time.monotonic() + 10
        while alive(pid):
            assert time.monotonic() < deadline, "the remote command outlived its ssh"
            time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_ssh_upload_then_python_and_probe(ssh_box, ssh_target):
    if not (remote.REMOTE_VENV / "bin" / "python").exists():
        pytest.fail(f"{remote.REMOTE_VENV} is missing: 'make install' makes it")
    src = ssh_box.base / "uploaded"
    with ssh_box.inside():
        target = ssh_target(src=str(src))
        app1 = TOPO.apps[0]
        target.upload_repo(app1)
        assert (src / "lab" / "remote.py").read_bytes() == (REPO / "lab" / "remote.py").read_bytes()
        mtimes = [(p / "lab" / "remote.py").stat().st_mtime for p in (src, REPO)]
        assert abs(mtimes[0] - mtimes[1]) < 0.01  # kept: the scripts' rsync sees no change
        for never in (".git", ".vagrant", "captures", "inventory.yaml"):
            assert not (src / never).exists()
        assert not list(src.glob(".lab-secrets*"))
        result = target.run(app1, [*target.python(app1), "-c",
                                   "import lab.remote; print(lab.remote.__file__)"])
        assert result.stdout.strip() == str(src / "lab" / "remote.py"), result.stderr
        # lab.probe works over SSH as in a namespace (here: loopback of the test's namespace).
        [answer] = probing.probe(target, app1, "memcached", "127.0.0.1:1")
        assert answer["ok"] is False and "refused" in answer["error"].lower()
        target.upload_repo(app1)  # again: replaced whole, still importable
        assert (src / "lab" / "remote.py").exists() and not Path(f"{src}.old").exists()


def test_ssh_capture_collected_cache_mode_and_interface(ssh_box, ssh_target, tmp_path):
    local = tmp_path / "20260101T000000Z-test.pcap"
    remote_file = Path("/var/tmp") / local.name  # where a capture is written on the node
    env_file = ssh_box.varlib / "django-lab" / "nodes" / "app1" / "django.env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("export LAB_NODE=app1\nexport LAB_CACHE_MODE=shared\n")
    with ssh_box.inside():
        target = ssh_target()
        assert target.capture_path(local) == remote_file
        target.run(TOPO.balancer, ["sh", "-c", f"printf pcap > {remote_file}"])
        target.collect_capture(TOPO.balancer, local)
        assert local.read_text() == "pcap"
        assert not remote_file.exists()  # not left behind on the node
        assert target.cache_mode() == "shared"
        loopback = topology.Node("db", "db", "127.0.0.1")
        assert target.interface(loopback) == "lo"
        with pytest.raises(LabError, match="db has no interface with 192.168.56.20"):
            target.interface(TOPO.db)


def test_ssh_secrets_are_uploaded_mode_600(ssh_box, ssh_target):
    with ssh_box.inside():
        target = ssh_target()
        target.secrets.write_text("LAB_SECRET_KEY=k\nLAB_DB_PASSWORD=p\n")
        target.upload_secrets(TOPO.db)
    uploaded = ssh_box.varlib / "django-lab" / "secrets.env"
    assert uploaded.read_text() == "LAB_SECRET_KEY=k\nLAB_DB_PASSWORD=p\n"
    assert stat.S_IMODE(uploaded.stat().st_mode) == 0o600


def test_ssh_up_refuses_a_server_without_its_lab_address(ssh_box, ssh_target):
    src = ssh_box.base / "never"
    with ssh_box.inside():
        target = ssh_target(src=str(src))
        with pytest.raises(LabError, match="--cache 'sometimes'"):
            target.up("sometimes")
        with pytest.raises(LabError) as error:
            target.up("leases")
    assert str(error.value).startswith(
        f"db (127.0.0.1) has no address {TOPO.db.address} from topology.yaml")
    assert not src.exists()  # nothing was uploaded or run


def test_ssh_down_stops_the_units_and_removes_the_state(ssh_box, ssh_target):
    unit = ("[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
            "[Install]\nWantedBy=multi-user.target\n")
    for name in ("lab-nginx.service", "lab-memcached.service", "other.service"):
        (ssh_box.units / name).write_text(unit)
    (ssh_box.varlib / "django-lab" / "nodes" / "db").mkdir(parents=True, exist_ok=True)
    with ssh_box.inside():
        target = ssh_target()
        started = target.run(TOPO.db, ["sh", "-c", "systemctl daemon-reload && systemctl enable "
                                       "--now lab-nginx.service lab-memcached.service"])
        assert started.returncode == 0, started.stderr
        target.secrets.write_text("LAB_DB_PASSWORD=x\n")
        target.down(say=lambda *a, **k: None)
    assert sorted(p.name for p in ssh_box.units.glob("*.service")) == ["other.service"]
    assert not (ssh_box.varlib / "django-lab").exists()
    assert (ssh_box.varlib / "standin").exists()  # the rest of /var/lib is untouched
    records = [yaml.safe_load(line) for line in
               (ssh_box.varlib / "standin" / "records.jsonl").read_text().splitlines()]
    disabled = {r["unit"] for r in records if r.get("action") == "disable" and r["changed"]}
    assert disabled == {"lab-nginx.service", "lab-memcached.service"}
    assert not target.secrets.exists()


def test_ssh_a_changed_host_key_is_refused(ssh_box, ssh_target, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    other = (tmp_path / "k.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_box.ports['db']} {other[0]} {other[1]}\n")
    with ssh_box.inside():
        target = ssh_target(known_hosts=str(known))
        with pytest.raises(LabError, match="cannot connect to db .*BadHostKey"):
            target.run(TOPO.db, ["true"])


def test_traffic_from_this_machine_needs_its_own_route(ssh_box, ssh_target):
    hosts = {n: {"host": "127.0.0.1", "port": p} for n, p in ssh_box.ports.items()
             if n != "client"}
    with ssh_box.inside():
        target = ssh_target(hosts=hosts)
        client = target.traffic_node()
        assert (client.role, client.address) == ("client", "192.168.56.1")
        # No route to 192.168.56.0/24 in this namespace: refused before anything is sent.
        with pytest.raises(LabError, match=r"this machine has no network to 192\.168\.56\.0/24"):
            target.run(client, ["true"])
        with pytest.raises(LabError, match="no network"):
            target.argv(TOPO.client, ["wrk", "http://192.168.56.10/"])
        # With a client host in the inventory, traffic starts there, over SSH.
        remote_client = ssh_target()
        assert remote_client.traffic_node() == TOPO.client
        assert remote_client.run(TOPO.client, ["true"]).returncode == 0


# --- the vagrant target, with a stand-in `vagrant` -------------------------------------------


@pytest.fixture
def vagrant_standin(ssh_box, tmp_path, monkeypatch):
    """`vagrant` on PATH that answers ssh-config/status like Vagrant and logs the rest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "ssh-config").write_text(ssh_box.ssh_config())
    (tmp_path / "status").write_text("".join(
        f"1700000000,{n.name},state,running\n" for n in TOPO.servers))
    script = bin_dir / "vagrant"
    script.write_text(f"""#!/bin/sh
echo "$* LAB_CACHE_MODE=${{LAB_CACHE_MODE:-}}" >> {tmp_path}/vagrant.log
case "$1" in
  ssh-config)
    if [ -e {tmp_path}/halted ]; then
      echo "The provider for this Vagrant-managed machine is reporting that it is not" >&2
      exit 1
    fi
    cat {tmp_path}/ssh-config ;;
  status) cat {tmp_path}/status ;;
esac
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("VAGRANT_DOTFILE_PATH", str(tmp_path / "dot-vagrant"))
    monkeypatch.setenv("LAB_SECRETS_FILE", str(tmp_path / "lab-secrets.env"))
    return tmp_path


def test_vagrant_target_reaches_the_vms_by_ssh_config(ssh_box, vagrant_standin):
    with ssh_box.inside():
        target = VagrantTarget(TOPO)
        try:
            assert target.run(TOPO.apps[1], ["id", "-un"]).stdout == "root\n"
            kept = vagrant_standin / "dot-vagrant" / "lab-ssh-config"
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600
            argv = target.argv(TOPO.db, ["printf", "%s", "x y"])
            assert argv[:8] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-F",
                                str(kept), "db"]
            assert subprocess.run(argv, capture_output=True, text=True).stdout == "x y"
            assert target.python(TOPO.apps[0])[1] == "PYTHONPATH=/vagrant"
            with pytest.raises(LabError, match="no network to 192.168.56.0/24.*vagrant up"):
                target.run(target.traffic_node(), ["true"])
        finally:
            target.close()
    log = (vagrant_standin / "vagrant.log").read_text().splitlines()
    assert log == [f"ssh-config {' '.join(n.name for n in TOPO.servers)} LAB_CACHE_MODE="]


def test_vagrant_up_provisions_in_order_and_down_destroys(vagrant_standin):
    target = VagrantTarget(TOPO)
    said = []
    target.up("off", say=said.append)
    log = (vagrant_standin / "vagrant.log").read_text().splitlines()
    assert log == ["up --no-provision LAB_CACHE_MODE=off", "rsync LAB_CACHE_MODE=off",
                   "provision LAB_CACHE_MODE=off"]
    with pytest.raises(LabError, match="--cache 'fast'"):
        target.up("fast")
    secrets = vagrant_standin / "lab-secrets.env"
    secrets.write_text("LAB_DB_PASSWORD=x\n")
    target.down(say=said.append)
    assert (vagrant_standin / "vagrant.log").read_text().splitlines()[-1] == \
        "destroy -f LAB_CACHE_MODE="
    assert not secrets.exists()


def test_vagrant_machines_not_running_is_one_line(vagrant_standin):
    (vagrant_standin / "halted").touch()
    (vagrant_standin / "status").write_text(
        "1700000000,db,state,running\n1700000000,app2,state,poweroff\n"
        "1700000000,balancer,state,not_created\n")
    with pytest.raises(LabError) as error:
        VagrantTarget(TOPO).run(TOPO.db, ["true"])
    message = str(error.value)
    assert "\n" not in message
    assert "app2 is poweroff, balancer is not created" in message
    assert "vagrant up" in message
