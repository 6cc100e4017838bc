"""Fixtures for the Vagrant and SSH targets, checked without a hypervisor.

- ``vagrant_run``: the real ``vagrant`` (Debian's, with vagrant-libvirt) in this repo, with
  VAGRANT_HOME, its .vagrant directory and the lab's secrets file in the test's tmp_path;
- ``plan``: the Vagrant config as Vagrant evaluates the Vagrantfile (dump_config.rb);
- ``topology_file``: topology.yaml with another number of app servers;
- ``ssh_box``: a real sshd on 127.0.0.1 in a network namespace of the test's own (ports 2201+,
  one per node), in a private mount namespace whose /var/lib, /etc/systemd/system and
  systemctl are the test's; ``ssh_box.inside()`` runs the test's own code in that namespace.
  Nothing of it touches the lab subnet or the root namespace's network; every process and
  the namespace are removed by PID and by name at teardown.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lab import topology

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CLONE_NEWNET = 0x40000000


def need(program: str) -> str:
    found = shutil.which(program)
    if not found:
        pytest.fail(f"{program} is not installed: 'make install' (provision/host.sh) installs it")
    return found


# --- Vagrant ---------------------------------------------------------------------------------


@pytest.fixture
def vagrant_env(tmp_path) -> dict[str, str]:
    need("vagrant")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAB_TOPOLOGY", "LAB_CACHE_MODE", "VAGRANT_NO_PARALLEL", "VAGRANT_CWD")}
    env.update(VAGRANT_HOME=str(tmp_path / "vagrant-home"), VAGRANT_CHECKPOINT_DISABLE="1",
               VAGRANT_DOTFILE_PATH=str(tmp_path / "dot-vagrant"), VAGRANT_NO_COLOR="1",
               LAB_SECRETS_FILE=str(tmp_path / "lab-secrets.env"))
    return env


@pytest.fixture
def vagrant_run(vagrant_env):
    """vagrant_run(*args, **env) -> CompletedProcess, in the repo (its Vagrantfile)."""

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["vagrant", *args], cwd=REPO, env={**vagrant_env, **extra},
                              capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
def dump_plan(vagrant_env):
    """dump_plan(**env) -> the evaluated config of every machine, as JSON."""
    need("ruby")

    def dump(**extra: str) -> dict:
        done = subprocess.run(["ruby", str(HERE / "dump_config.rb"), str(REPO)], cwd=REPO,
                              env={**vagrant_env, **extra}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return dump


class PlanDumper:
    """The evaluated Vagrant config, with a secrets file and Vagrant home of its own."""

    def __init__(self, base: Path):
        need("ruby")
        self.secrets = base / "lab-secrets.env"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("LAB_TOPOLOGY", "LAB_CACHE_MODE", "VAGRANT_NO_PARALLEL")}
        self.env.update(VAGRANT_HOME=str(base / "home"), VAGRANT_CHECKPOINT_DISABLE="1",
                        VAGRANT_DOTFILE_PATH=str(base / "dot"), LAB_SECRETS_FILE=str(self.secrets))

    def dump(self, **extra: str) -> dict:
        done = subprocess.run(["ruby", str(HERE / "dump_config.rb"), str(REPO)], cwd=REPO,
                              env={**self.env, **extra}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="session")
def plan_dumper(tmp_path_factory) -> PlanDumper:
    return PlanDumper(tmp_path_factory.mktemp("plan"))


@pytest.fixture
def topology_file(tmp_path):
    """topology_file(apps=N) -> a copy of topology.yaml with app1..appN."""

    def write(apps: int) -> Path:
        raw = yaml.safe_load(topology.DEFAULT_PATH.read_text())
        raw["apps"] = [{"name": f"app{i}", "address": f"192.168.56.{10 + i}"}
                       for i in range(1, apps + 1)]
        path = tmp_path / f"topology-{apps}apps.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


# --- a real sshd in a namespace of the test's own -----------------------------------------------


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def network_namespace(path: str):
    """Run the calling thread (and what it starts) in another network namespace."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's network namespace")
    finally:
        os.close(there)
        os.close(home)


class SshBox:
    """sshd on 127.0.0.1:PORT.. in namespace NAME; files under BASE; the client key."""

    FIRST_PORT = 2201

    def __init__(self, base: Path, nodes: list[str]):
        self.base = base
        self.name = f"sshtest-{os.getpid()}"
        self.ports = {node: self.FIRST_PORT + i for i, node in enumerate(nodes)}
        self.key = base / "client_key"
        self.varlib = base / "varlib"          # the server's /var/lib
        self.units = base / "units"            # the server's /etc/systemd/system
        self.known_hosts = base / "known_hosts"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if not os.path.exists("/usr/sbin/sshd"):
            pytest.fail("sshd is not installed: 'make install' (provision/host.sh) installs "
                        "openssh-server")
        for directory in (self.varlib / "standin", self.units):
            directory.mkdir(parents=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(self.base / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)],
                       check=True)
        shutil.copy(self.key.with_suffix(".pub"), self.base / "authorized_keys")
        ports = "".join(f"Port {port}\n" for port in self.ports.values())
        (self.base / "sshd_config").write_text(
            f"{ports}ListenAddress 127.0.0.1\nHostKey {self.base / 'host_key'}\n"
            f"AuthorizedKeysFile {self.base / 'authorized_keys'}\nPidFile none\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n")
        systemctl = self.base / "systemctl"
        python = os.path.realpath(shutil.which("python3.11") or "/usr/bin/python3")
        systemctl.write_text(f'#!/bin/sh\nexec {python} {HERE / "standins.py"} systemctl "$@"\n')
        systemctl.chmod(0o755)

        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        sandbox = ('set -e; mount -t tmpfs tmpfs /run; mkdir -m 755 /run/sshd; '
                   'mount --bind "$1/varlib" /var/lib; '
                   'mount --bind "$1/units" /etc/systemd/system; '
                   'mount --bind "$1/systemctl" /usr/bin/systemctl; '
                   'exec /usr/sbin/sshd -D -e -f "$1/sshd_config"')
        # ip netns exec, unshare and sh each exec the next: this PID is sshd's.
        with (self.base / "sshd.log").open("w") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.name, "unshare", "--mount",
                                          "--propagation", "private", "sh", "-c", sandbox, "sh",
                                          str(self.base)], stderr=log)
        deadline = time.monotonic() + 10
        while not self.listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(self.base / 'sshd.log').read_text()}")
            time.sleep(0.05)

    def listening(self) -> bool:
        out = subprocess.run(["ip", "netns", "exec", self.name, "ss", "-Hltn"],
                             capture_output=True, text=True).stdout
        return all(f"127.0.0.1:{port}" in out for port in self.ports.values())

    def inside(self):
        return network_namespace(f"/run/netns/{self.name}")

    def inventory(self, **fields) -> Path:
        """An inventory of this box's nodes (one port each), with fields merged in."""
        raw = {"user": "root", "identity_file": str(self.key),
               "known_hosts": str(self.known_hosts), "src": str(self.base / "src"),
               "hosts": {node: {"host": "127.0.0.1", "port": port}
                         for node, port in self.ports.items()}}
        raw.update(fields)
        path = self.base / "inventory.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def ssh_config(self) -> str:
        """What `vagrant ssh-config` prints, for this box's ports."""
        return "".join(
            f"Host {node}\n  HostName 127.0.0.1\n  User root\n  Port {port}\n"
            "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n"
            f"  PasswordAuthentication no\n  IdentityFile {self.key}\n  IdentitiesOnly yes\n"
            "  LogLevel FATAL\n  PubkeyAcceptedKeyTypes +ssh-rsa\n  HostKeyAlgorithms +ssh-rsa\n\n"
            for node, port in self.ports.items())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Sessions sshd forked and anything they left: only processes in our namespace.
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True,
                             text=True).stdout
        for pid in (int(p) for p in out.split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture(scope="module")
def ssh_box(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the SSH target tests need root (a network namespace of their own)")
    need("ssh")
    nodes = [n.name for n in topology.load().servers] + ["client"]
    box = SshBox(tmp_path_factory.mktemp("sshbox"), nodes)
    try:
        box.start()
        yield box
    finally:
        box.stop()
