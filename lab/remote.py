"""Targets whose nodes are machines reached over SSH: the same fab tasks, other hardware.

- ``vagrant``: the VMs of the Vagrantfile (openSUSE Leap 15.6). SSH details come from
  ``vagrant ssh-config``; ``up`` is ``vagrant up`` then ``vagrant provision`` (the Vagrantfile
  runs the provision scripts, db first, then the apps, then the balancer); ``down`` is
  ``vagrant destroy -f``. Traffic starts on this machine (the host is the client).
- ``ssh``: existing servers listed in an inventory file (``LAB_INVENTORY``, default
  ``inventory.yaml``; see ``inventory.example.yaml``). ``up`` uploads the repo and the lab's
  secrets over SSH and runs the same provision scripts with ``LAB_INIT=systemd`` in the same
  order; ``down`` stops and disables the lab's units and removes /var/lib/django-lab.

Commands on a node run through Fabric/paramiko connections, with ``sudo -n`` unless the SSH
user is root. Environment variables given to ``run`` travel on the command's stdin, never
on a command line (other users of the machine could read it in ``ps``). ``argv`` gives the
``ssh`` command line for a node; ``popen`` starts one whose signals reach the remote
command (``send_signal(SIGINT)`` stops a remote tcpdump, which then prints its counts on
stderr as it does in the local lab); if the local ssh dies, the remote command is ended too.

Traffic from this machine must not go out by the default route (see ../NOTES: a lab address
sent that way leaves the machine): before running anything locally the targets check that
this machine has its own route to the lab's subnet (the VMs' host-only network).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab import paths, provision
from lab.errors import LabError
from lab.targets import Result, Target
from lab.topology import Node, Topology

# Where things live on every remote node: the same paths as the Vagrantfile's.
REMOTE_STATE = Path("/var/lib/django-lab")
REMOTE_VENV = Path("/opt/django-lab/venv")
VAGRANT_SRC = Path("/vagrant")
SSH_SRC = Path("/opt/django-lab/src")

VAGRANT_SECRETS = paths.ROOT / ".lab-secrets.env"  # the Vagrantfile's default (gitignored)
DEFAULT_INVENTORY = paths.ROOT / "inventory.yaml"

# Never uploaded to a server: history, local state, captures, secrets, the inventory.
UPLOAD_EXCLUDE = {".git", ".vagrant", "captures", "__pycache__", ".pytest_cache", ".ruff_cache",
                  "inventory.yaml"}
CONNECT_TIMEOUT = 15


def remote_environment(topo: Topology, node: Node, cache_mode: str, src: Path) -> dict[str, str]:
    """The provision scripts' environment on a VM or server (the Vagrantfile computes the
    same in Ruby with src=/vagrant; tests/vagrant compares them)."""
    return provision.environment(topo, node, init="systemd", state=REMOTE_STATE, src=src,
                                 venv=REMOTE_VENV, cache_mode=cache_mode)


def check_cache_mode(cache_mode: str) -> None:
    if cache_mode not in provision.CACHE_MODES:
        raise LabError(f"--cache {cache_mode!r}: choose one of {', '.join(provision.CACHE_MODES)}")


@dataclass
class Host:
    """How to reach one node over SSH."""

    node: str
    hostname: str
    port: int = 22
    user: str = "root"
    identity_files: list[str] = field(default_factory=list)
    known_hosts: Path | None = None   # None: host keys not checked (Vagrant's throwaway VMs)
    ssh_config: Path | None = None    # an ssh -F file (Vagrant's), else the user's own
    alias: str | None = None          # the Host name in ssh_config

    @property
    def sudo(self) -> bool:
        return self.user != "root"

    @property
    def where(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def remote_command(host: Host, argv: list[str], env: dict[str, str] | None = None) -> str:
    """The shell command line the SSH server runs for argv (with sudo, and env from stdin)."""
    argv = [str(a) for a in argv]
    if env:
        argv = ["sh", "-c", 'set -a; . /dev/stdin; set +a; exec "$@"', "sh", *argv]
    if host.sudo:
        argv = ["sudo", "-n", "--", *argv]
    return shlex.join(argv)


def env_script(env: dict[str, str]) -> bytes:
    for key in env:
        if not key.replace("_", "").isalnum() or key[0].isdigit():
            raise LabError(f"environment variable name {key!r} is not valid")
    return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in env.items()).encode()


class RemoteTarget(Target):
    """Common to the Vagrant and SSH targets: nodes reached over SSH, traffic from a host."""

    env_in_argv = False
    src: Path = SSH_SRC
    secrets: Path  # the lab's secrets on this machine (SECRET_KEY, DB password), mode 600

    def __init__(self, topo: Topology):
        super().__init__(topo)
        self._connections: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._route_checked = False

    # --- what a subclass says ----------------------------------------------------------

    def host(self, node: Node) -> Host:
        raise NotImplementedError

    def is_local(self, node: Node) -> bool:
        """The client is this machine unless the target names a client host."""
        return node.role == "client"

    # --- Target ------------------------------------------------------------------------

    def traffic_node(self) -> Node:
        """This machine as the client: its address on the lab's network is the subnet's
        first one (VirtualBox's host-only adapter and libvirt's bridge both take it)."""
        client = self.topo.client
        return Node(name=client.name, role="client", address=str(next(self.topo.subnet.hosts())))

    def argv(self, node: Node, argv: list[str]) -> list[str]:
        if self.is_local(node):
            self.check_host_route()
            return [str(a) for a in argv]
        host = self.host(node)
        return [*self.ssh_argv(host), "--", remote_command(host, argv)]

    def popen(self, node: Node, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start argv on the node. On a remote node the process's stdin carries signals to
        the remote command (see RemoteProcess); stdout and stderr are the command's."""
        if self.is_local(node):
            return subprocess.Popen(self.argv(node, argv), cwd=paths.ROOT, **kwargs)
        host = self.host(node)
        wrapped = ["sh", "-c", SIGNAL_RELAY, "sh", *[str(a) for a in argv]]
        kwargs.pop("stdin", None)
        return RemoteProcess([*self.ssh_argv(host), "--", remote_command(host, wrapped)],
                             cwd=paths.ROOT, **kwargs)

    def run(self, node: Node, argv: list[str], *, extra_env: dict[str, str] | None = None,
            timeout: float | None = 120) -> Result:
        if self.is_local(node):
            self.check_host_route()
            env = {**os.environ, **extra_env} if extra_env else None
            try:
                done = subprocess.run([str(a) for a in argv], cwd=paths.ROOT, capture_output=True,
                                      text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                raise LabError(f"{argv[0]} on this machine took over {timeout} s") from None
            return Result(done.returncode, done.stdout, done.stderr)
        code, out, err = self.execute(node, argv, env=extra_env, timeout=timeout)
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def python(self, node: Node) -> list[str]:
        if self.is_local(node):
            return [str(paths.VENV / "bin" / "python")]
        # The venv is made by provision/app.sh: app nodes have it (and the lab package in src).
        return ["env", f"PYTHONPATH={self.src}", str(REMOTE_VENV / "bin" / "python")]

    def collect_capture(self, node: Node, local: Path) -> None:
        """Copy a finished capture from the node into captures/, then delete it there."""
        remote = self.capture_path(local)
        self.fetch(node, remote, local)
        self.execute(node, ["rm", "-f", "--", str(remote)], timeout=60)

    def cache_mode(self) -> str:
        """The cache mode the app servers run with, read from the first one's settings."""
        env_file = REMOTE_STATE / "nodes" / self.topo.apps[0].name / "django.env"
        try:
            code, out, _ = self.execute(self.topo.apps[0], ["cat", str(env_file)], timeout=60)
        except LabError:
            return "unknown"
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("export LAB_CACHE_MODE="):
                return line.split("=", 1)[1].strip()
        return "unknown"

    def interface(self, node: Node) -> str:
        """The node's network interface on the lab's network (eth1 on a VM: eth0 is NAT)."""
        code, out, _ = self.execute(node, ["ip", "-o", "-4", "addr", "show", "to",
                                           node.address], timeout=60)
        fields = out.decode().split()
        if code != 0 or len(fields) < 2:
            raise LabError(f"{node.name} has no interface with {node.address}")
        return fields[1]

    def fetch(self, node: Node, remote: Path, local: Path) -> None:
        if self.is_local(node):
            if Path(remote).resolve() != Path(local).resolve():
                shutil.copyfile(remote, local)
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + ".part")
        with tmp.open("wb") as out:
            code, _, err = self.execute(node, ["cat", "--", str(remote)], timeout=None,
                                        stdout=out.write)
        if code != 0:
            tmp.unlink(missing_ok=True)
            problem = err.decode(errors="replace").strip().splitlines() or [f"exit {code}"]
            raise LabError(f"fetching {remote} from {node.name} failed: {problem[-1]}")
        tmp.replace(local)

    # --- SSH ---------------------------------------------------------------------------

    def ssh_argv(self, host: Host) -> list[str]:
        """The local ssh command line to the host (for argv/popen)."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
        if host.ssh_config:
            return [*argv, "-F", str(host.ssh_config), host.alias or host.node]
        for identity in host.identity_files:
            argv += ["-i", identity, "-o", "IdentitiesOnly=yes"]
        if host.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={host.known_hosts}",
                     "-o", "StrictHostKeyChecking=accept-new"]
        return [*argv, "-p", str(host.port), "-l", host.user, host.hostname]

    def connection(self, node: Node):
        """The node's Fabric connection, opened once per target (nodes in parallel)."""
        with self._lock:
            lock = self._locks.setdefault(node.name, threading.Lock())
        with lock:
            conn = self._connections.get(node.name)
            if conn is not None and conn.is_connected:
                return conn
            host = self.host(node)
            conn = self.make_connection(host)
            try:
                conn.open()
            except Exception as exc:  # paramiko's and socket's errors, all alike to the user
                raise LabError(f"cannot connect to {node.name} ({host.where}): "
                               f"{describe(exc)}; {self.connect_hint()}") from None
            self._connections[node.name] = conn
            return conn

    def make_connection(self, host: Host):
        import paramiko
        from fabric import Config, Connection

        kwargs = {"look_for_keys": not host.identity_files, "allow_agent": not host.identity_files}
        if host.ssh_config:  # exactly what Vagrant said (host, port, user, key, proxy ...)
            config = Config(ssh_config=paramiko.SSHConfig.from_path(str(host.ssh_config)))
            conn = Connection(host.alias or host.node, config=config, connect_kwargs=kwargs,
                              connect_timeout=CONNECT_TIMEOUT)
        else:  # the user's ~/.ssh/config applies, the inventory's fields win
            if host.identity_files:
                kwargs["key_filename"] = list(host.identity_files)
            conn = Connection(host.hostname, user=host.user, port=host.port, config=Config(),
                              connect_kwargs=kwargs, connect_timeout=CONNECT_TIMEOUT)
        if host.known_hosts:
            if host.known_hosts.exists():
                conn.client.load_host_keys(str(host.known_hosts))
            conn.client.set_missing_host_key_policy(_AcceptNew(host.known_hosts))
        return conn

    def connect_hint(self) -> str:
        return "check the host, port, user and key"

    def execute(self, node: Node, argv: list[str], *, env: dict[str, str] | None = None,
                stdin: bytes = b"", timeout: float | None = 120,
                stdout=None) -> tuple[int, bytes, bytes]:
        """Run argv on the node; (exit status, stdout, stderr). stdout=callable streams it."""
        host = self.host(node)
        command = remote_command(host, argv, env)
        data = (env_script(env) if env else b"") + stdin
        transport = self.connection(node).client.get_transport()
        try:
            channel = transport.open_session(timeout=CONNECT_TIMEOUT)
            channel.exec_command(command)
        except Exception as exc:
            self._connections.pop(node.name, None)
            raise LabError(f"running a command on {node.name} failed: {describe(exc)}") from None

        def feed():
            try:
                if data:
                    channel.sendall(data)
                channel.shutdown_write()
            except OSError:
                pass  # the command ended without reading all of it: its status says why

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            select.select([channel], [], [], 0.2)
            while channel.recv_ready():
                chunk = channel.recv(1 << 16)
                if stdout:
                    stdout(chunk)
                else:
                    out += chunk
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(1 << 16)
            # The exit status can come before the last output: wait for the end of output.
            if (channel.eof_received and channel.exit_status_ready()
                    and not channel.recv_ready() and not channel.recv_stderr_ready()):
                break
            if deadline is not None and time.monotonic() > deadline:
                channel.close()
                raise LabError(f"{argv[0]} on {node.name} took over {timeout} s")
        code = channel.recv_exit_status()
        channel.close()
        feeder.join(timeout=5)
        if code == 1 and host.sudo and b"sudo: a password is required" in err:
            raise LabError(f"{node.name}: {host.user} needs passwordless sudo (sudo -n) there")
        return code, bytes(out), bytes(err)

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    # --- this machine as the client --------------------------------------------------------

    def check_host_route(self) -> None:
        """Refuse to send lab traffic from this machine unless it has a network of its own
        to the lab's subnet: by the default route it would leave the machine."""
        if self._route_checked or not sys.platform.startswith("linux"):
            return
        problem = host_route_problem(self.topo.balancer.address)
        if problem:
            raise LabError(f"this machine has no network to {self.topo.subnet} ({problem}): "
                           f"{self.route_hint()}")
        self._route_checked = True

    def route_hint(self) -> str:
        return "is the lab up?"

    # --- provisioning over SSH (the ssh target; Vagrant provisions by itself) ---------------

    def upload_repo(self, node: Node) -> None:
        """Copy this checkout (no .git, captures, secrets) to src on the node, atomically;
        unchanged files keep their times, so the scripts see nothing changed."""
        archive = repo_archive(paths.ROOT)
        src = shlex.quote(str(self.src))
        script = (f"set -e; rm -rf {src}.new; mkdir -p {src}.new; "
                  f"tar -xzf - -C {src}.new --no-same-owner; rm -rf {src}.old; "
                  f"if [ -d {src} ]; then mv {src} {src}.old; fi; mv {src}.new {src}; "
                  f"rm -rf {src}.old")
        code, _, err = self.execute(node, ["sh", "-c", script], stdin=archive, timeout=300)
        if code != 0:
            raise LabError(f"uploading the repo to {node.name}:{self.src} failed: "
                           f"{last_line(err)}")

    def upload_secrets(self, node: Node) -> None:
        """The lab's secrets to LAB_SECRETS on the node (root, mode 600), through stdin."""
        target = shlex.quote(str(REMOTE_STATE / "secrets.env"))
        script = (f"set -e; umask 077; mkdir -p {shlex.quote(str(REMOTE_STATE))}; "
                  f"cat > {target}.new; chmod 600 {target}.new; "
                  f"if cmp -s {target}.new {target}; then rm -f {target}.new; "
                  f"else mv -f {target}.new {target}; fi")
        code, _, err = self.execute(node, ["sh", "-c", script], stdin=self.secrets.read_bytes(),
                                    timeout=60)
        if code != 0:
            raise LabError(f"copying the secrets to {node.name} failed: {last_line(err)}")

    def provision_node(self, node: Node, cache_mode: str) -> str:
        env = remote_environment(self.topo, node, cache_mode, self.src)
        script = str(self.src / "provision" / f"{node.role}.sh")
        code, out, err = self.execute(node, ["bash", script], env=env, timeout=1800)
        output = (out + err).decode(errors="replace")
        if code != 0:
            log = Path(tempfile.gettempdir()) / f"django-lab-provision-{node.name}.log"
            log.write_text(output)
            raise LabError(f"provisioning {node.name} failed: {last_line(output.encode())} "
                           f"(full output: {log})")
        return output


class VagrantTarget(RemoteTarget):
    """The Vagrantfile's VMs. The host is the client; SSH details from vagrant ssh-config."""

    name = "vagrant"
    src = VAGRANT_SRC

    def __init__(self, topo: Topology):
        super().__init__(topo)
        self.secrets = Path(os.environ.get("LAB_SECRETS_FILE", VAGRANT_SECRETS))
        if not self.secrets.is_absolute():
            self.secrets = paths.ROOT / self.secrets
        self._hosts: dict[str, Host] | None = None

    def vagrant(self, *args: str, capture: bool = True, env: dict[str, str] | None = None):
        try:
            return subprocess.run(["vagrant", *args], cwd=paths.ROOT, text=True,
                                  capture_output=capture, env={**os.environ, **(env or {})})
        except FileNotFoundError:
            raise LabError("vagrant is not installed: see the README's Vagrant section") from None

    def host(self, node: Node) -> Host:
        if self._hosts is None:
            self._hosts = self.read_ssh_config()
        if node.name not in self._hosts:
            raise LabError(f"no Vagrant machine {node.name}: was topology.yaml changed after "
                           "'vagrant up'? (vagrant up)")
        return self._hosts[node.name]

    def read_ssh_config(self) -> dict[str, Host]:
        names = [n.name for n in self.topo.servers]
        done = self.vagrant("ssh-config", *names)
        if done.returncode != 0:
            why = self.machine_states() or last_line(done.stderr.encode())
            raise LabError(f"vagrant ssh-config failed: {why}; start the VMs with 'vagrant up' "
                           "(or fab up --target vagrant)")
        return parse_ssh_config(done.stdout, names, vagrant_ssh_config())

    def machine_states(self) -> str:
        done = self.vagrant("status", "--machine-readable")
        states = {}
        for line in done.stdout.splitlines():
            parts = line.split(",", 4)
            if len(parts) >= 4 and parts[2] == "state":
                states[parts[1]] = parts[3]
        down = [f"{name} is {state.replace('_', ' ')}" for name, state in states.items()
                if state != "running"]
        return ", ".join(down)

    def connect_hint(self) -> str:
        return "is the VM running? (vagrant status)"

    def route_hint(self) -> str:
        return "are the VMs up? (vagrant up; the README's Vagrant section, host-only network)"

    def up(self, cache_mode: str, say=print) -> None:
        """Boot the VMs in order, copy the repo to them, provision them (db, apps,
        balancer): a second run changes nothing."""
        check_cache_mode(cache_mode)
        env = {"LAB_CACHE_MODE": cache_mode}
        for args in (("up", "--no-provision"), ("rsync",), ("provision",)):
            say(f"vagrant {' '.join(args)}")
            done = self.vagrant(*args, capture=False, env=env)
            if done.returncode != 0:
                raise LabError(f"vagrant {args[0]} failed (exit {done.returncode}): see its "
                               "output above and the README's known Vagrant failures")
        self._hosts = None

    def down(self, say=print) -> None:
        done = self.vagrant("destroy", "-f", capture=False)
        if done.returncode != 0:
            raise LabError(f"vagrant destroy failed (exit {done.returncode}): see its output")
        for leftover in (self.secrets, vagrant_ssh_config()):
            leftover.unlink(missing_ok=True)
        say("lab is down: the VMs are destroyed and the lab's secrets removed")


class SshTarget(RemoteTarget):
    """Existing servers from an inventory file, provisioned by the same scripts."""

    name = "ssh"

    def __init__(self, topo: Topology, inventory: Path | None = None):
        super().__init__(topo)
        path = inventory or Path(os.environ.get("LAB_INVENTORY", DEFAULT_INVENTORY))
        self.inventory = Inventory.load(path, topo)
        self.src = self.inventory.src
        # One lab per inventory: its secrets sit next to it (.lab-secrets.* is gitignored).
        self.secrets = path.parent / f".lab-secrets.{path.stem}.env"

    def host(self, node: Node) -> Host:
        return self.inventory.hosts[node.name]

    def is_local(self, node: Node) -> bool:
        return node.role == "client" and node.name not in self.inventory.hosts

    def traffic_node(self) -> Node:
        if self.topo.client.name in self.inventory.hosts:
            return self.topo.client
        return super().traffic_node()

    def route_hint(self) -> str:
        return ("give this machine a route to the servers' lab network, or name a client "
                f"host in {self.inventory.path.name}")

    def up(self, cache_mode: str, say=print) -> None:
        check_cache_mode(cache_mode)
        servers = list(self.topo.servers)
        clients = [self.topo.client] if self.topo.client.name in self.inventory.hosts else []
        with ThreadPoolExecutor(max_workers=len(servers) + 1) as pool:
            list(pool.map(self.preflight, servers + clients))
        provision.write_secrets(self.secrets)
        with ThreadPoolExecutor(max_workers=len(servers) + 1) as pool:
            list(pool.map(self.upload_repo, servers + clients))
            list(pool.map(self.upload_secrets, [n for n in servers if n.role in ("db", "app")]))
        say(f"uploaded the repo to {self.src} on {len(servers + clients)} machines")
        # db first, then the app servers side by side (app1 migrates and seeds), then the
        # balancer: the order of lab/provision.py provision_all() and of the Vagrantfile.
        say(self.provision_node(self.topo.db, cache_mode), end="")
        with ThreadPoolExecutor(max_workers=len(self.topo.apps)) as pool:
            for output in pool.map(lambda a: self.provision_node(a, cache_mode), self.topo.apps):
                say(output, end="")
        say(self.provision_node(self.topo.balancer, cache_mode), end="")

    def preflight(self, node: Node) -> None:
        """Reachable, root or passwordless sudo, and holding its topology address; a client
        host also needs the lab's tools (its venv): nothing provisions it."""
        if node.role == "client":
            code, _, _ = self.execute(node, ["test", "-x", str(REMOTE_VENV / "bin" / "python")])
            if code != 0:
                raise LabError(f"{node.name} ({self.host(node).hostname}) has no "
                               f"{REMOTE_VENV}: install the lab's tools there first (make "
                               "install, on Debian/Ubuntu)")
        code, out, _ = self.execute(node, ["ip", "-o", "-4", "addr", "show"], timeout=60)
        if code != 0:
            raise LabError(f"{node.name}: 'ip addr' failed there (exit {code})")
        addresses = {part.split("/")[0] for line in out.decode().splitlines()
                     for part in line.split() if "/" in part}
        if node.address not in addresses:
            raise LabError(f"{node.name} ({self.host(node).hostname}) has no address "
                           f"{node.address} from {self.topo.path.name}: give it that address "
                           "on the lab's private network, or edit the topology")

    def down(self, say=print) -> None:
        failures = []
        for node in reversed(self.topo.servers):
            try:
                code, out, err = self.execute(node, ["sh", "-c", DOWN_SCRIPT], timeout=300)
            except LabError as exc:
                failures.append(str(exc))
                continue
            if code != 0:
                failures.append(f"{node.name}: {last_line(err)}")
            else:
                say(out.decode(errors="replace"), end="")
        if failures:
            raise LabError("taking the lab down failed on: " + "; ".join(failures))
        self.secrets.unlink(missing_ok=True)
        say("lab is down: units stopped and removed, state deleted on every server")


# Runs "$@" in place of the shell (same PID), while a watcher turns each line of stdin (a
# signal name) into that signal for it, and ends it with TERM when stdin closes (the local
# ssh went away). The watcher's output goes nowhere, so the session ends with the command.
SIGNAL_RELAY = """exec 3<&0
( while IFS= read -r sig <&3; do kill -s "$sig" "$$" 2>/dev/null || exit 0; done
  kill -s TERM "$$" 2>/dev/null ) >/dev/null 2>&1 &
exec "$@" </dev/null 3<&-
"""


class RemoteProcess(subprocess.Popen):
    """The local ssh process of a remote command: its signals go to the remote command,
    through a pipe of its own on the ssh's stdin (so communicate() cannot close it early)."""

    def __init__(self, args, **kwargs):
        read, self._signals = os.pipe()
        try:
            super().__init__(args, stdin=read, **kwargs)
        finally:
            os.close(read)

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None or self._signals is None:
            return
        with contextlib.suppress(OSError):  # the remote side is gone already
            os.write(self._signals, f"{signal.Signals(sig).name.removeprefix('SIG')}\n".encode())

    def poll(self):
        code = super().poll()
        if code is not None:
            self._close_signals()
        return code

    def wait(self, timeout=None):
        code = super().wait(timeout)
        self._close_signals()
        return code

    def _close_signals(self) -> None:
        if getattr(self, "_signals", None) is not None:
            os.close(self._signals)
            self._signals = None

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        super().send_signal(signal.SIGKILL)  # the remote side sees stdin close: TERM


# Stops, disables and removes the lab's units, its firewall table and its state.
DOWN_SCRIPT = f"""set -u
for unit in /etc/systemd/system/lab-*.service; do
  [ -e "$unit" ] || continue
  name=${{unit##*/}}
  systemctl disable --now --quiet "$name" || true
  rm -f "$unit"
done
systemctl daemon-reload || true
nft delete table inet lab 2>/dev/null || true
rm -rf {shlex.quote(str(REMOTE_STATE))}
echo "[$(hostname)] lab units stopped and removed, {REMOTE_STATE} deleted"
"""


# --- the inventory ----------------------------------------------------------------------------

INVENTORY_FIELDS = {"user", "port", "identity_file", "known_hosts", "src", "hosts"}
HOST_FIELDS = {"host", "user", "port", "identity_file"}


@dataclass
class Inventory:
    path: Path
    hosts: dict[str, Host]
    src: Path

    @classmethod
    def load(cls, path: Path, topo: Topology) -> Inventory:
        import yaml

        name = path.name

        def fail(field_name: str, problem: str) -> LabError:
            return LabError(f"{name}: {field_name}: {problem}")

        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise LabError(f"{path}: no such file; copy inventory.example.yaml to "
                           "inventory.yaml and list your servers (or set LAB_INVENTORY)") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise LabError(f"{name}: not valid YAML{where}; fix the syntax") from None
        if not isinstance(raw, dict):
            raise LabError(f"{name}: must be a mapping with a 'hosts' field")
        for key in raw:
            if key not in INVENTORY_FIELDS:
                fields = ", ".join(sorted(INVENTORY_FIELDS))
                raise fail(str(key), f"unknown field (fields: {fields})")
        if "hosts" not in raw:
            raise fail("hosts", "is missing")
        if not isinstance(raw["hosts"], dict):
            raise fail("hosts", "must be a mapping of node name to host")

        def text(value, field_name: str) -> str:
            if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
                raise fail(field_name, f"{value!r} must be a non-empty string without spaces")
            return value

        def port(value, field_name: str) -> int:
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                raise fail(field_name, f"{value!r} must be a port number from 1 to 65535")
            return value

        def existing_file(value, field_name: str) -> str:
            found = Path(text(value, field_name)).expanduser()
            if not found.is_file():
                raise fail(field_name, f"{found} does not exist")
            return str(found)

        default_user = text(raw["user"], "user") if "user" in raw else "root"
        default_port = port(raw["port"], "port") if "port" in raw else 22
        default_key = existing_file(raw["identity_file"], "identity_file") \
            if "identity_file" in raw else None
        known = Path(text(raw.get("known_hosts", "~/.ssh/known_hosts"), "known_hosts")).expanduser()
        src = Path(text(raw.get("src", str(SSH_SRC)), "src"))
        if not src.is_absolute() or src == Path("/"):
            raise fail("src", f"{src} must be an absolute directory other than /")

        nodes = {n.name: n for n in topo.nodes}
        hosts: dict[str, Host] = {}
        seen: dict[tuple[str, int], str] = {}
        for node_name, entry in raw["hosts"].items():
            where = f"hosts.{node_name}"
            if node_name not in nodes:
                raise fail(where, f"no node {node_name!r} in {topo.path.name} "
                           f"(nodes: {', '.join(nodes)})")
            if isinstance(entry, str):
                entry = {"host": entry}
            if not isinstance(entry, dict):
                raise fail(where, "must be a host name or a mapping with 'host'")
            for key in entry:
                if key not in HOST_FIELDS:
                    raise fail(f"{where}.{key}", "unknown field (fields: "
                               + ", ".join(sorted(HOST_FIELDS)) + ")")
            if "host" not in entry:
                raise fail(f"{where}.host", "is missing")
            host = Host(
                node=node_name,
                hostname=text(entry["host"], f"{where}.host"),
                port=port(entry["port"], f"{where}.port") if "port" in entry else default_port,
                user=text(entry["user"], f"{where}.user") if "user" in entry else default_user,
                identity_files=[existing_file(entry["identity_file"], f"{where}.identity_file")]
                if "identity_file" in entry else ([default_key] if default_key else []),
                known_hosts=known,
            )
            key = (host.hostname, host.port)
            if key in seen:
                raise fail(where, f"{host.hostname}:{host.port} is already {seen[key]}'s "
                           "(one server per node: the lab's units would collide)")
            seen[key] = node_name
            hosts[node_name] = host
        for node in topo.servers:
            if node.name not in hosts:
                raise fail(f"hosts.{node.name}", f"is missing (every server node of "
                           f"{topo.path.name} needs one)")
        return cls(path=path, hosts=hosts, src=src)


# --- helpers --------------------------------------------------------------------------------


def vagrant_ssh_config() -> Path:
    """Where `vagrant ssh-config` output is kept for `ssh -F`: in Vagrant's own directory."""
    dotfile = Path(os.environ.get("VAGRANT_DOTFILE_PATH", ".vagrant"))
    return (paths.ROOT / dotfile) / "lab-ssh-config"  # a relative path is the project's


def parse_ssh_config(text: str, names: list[str], save_to: Path) -> dict[str, Host]:
    """Hosts from `vagrant ssh-config` output, which is also saved for `ssh -F`."""
    import paramiko

    config = paramiko.SSHConfig.from_text(text)
    hosts = {}
    for name in names:
        if name not in config.get_hostnames():
            raise LabError(f"vagrant ssh-config has no machine {name}: run 'vagrant up'")
        entry = config.lookup(name)
        hosts[name] = Host(node=name, hostname=entry["hostname"], port=int(entry.get("port", 22)),
                           user=entry.get("user", "vagrant"),
                           identity_files=list(entry.get("identityfile", [])),
                           known_hosts=None, ssh_config=save_to, alias=name)
    save_to.parent.mkdir(parents=True, exist_ok=True)
    save_to.touch(mode=0o600)
    save_to.write_text(text)
    return hosts


def host_route_problem(address: str) -> str | None:
    """None if this machine reaches address by a route of its own; else what is wrong."""
    done = subprocess.run(["ip", "-j", "route", "get", address], capture_output=True, text=True)
    if done.returncode != 0:
        return (done.stderr.strip() or "no route").rstrip(".")
    route = (json.loads(done.stdout or "[]") or [{}])[0]
    kind = route.get("type")
    if kind in ("unreachable", "blackhole", "prohibit"):
        return f"the route to {address} is {kind}"
    defaults = json.loads(subprocess.run(["ip", "-j", "route", "show", "default"],
                                         capture_output=True, text=True).stdout or "[]")
    for default in defaults:
        if route.get("gateway") and (route.get("gateway"), route.get("dev")) == \
                (default.get("gateway"), default.get("dev")):
            return f"{address} would go out by the default route via {route['gateway']}"
    return None


def repo_archive(root: Path) -> bytes:
    """A gzipped tar of the checkout, without what never leaves this machine."""
    buffer = io.BytesIO()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p in UPLOAD_EXCLUDE or p.startswith(".lab-secrets") for p in parts):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for entry in sorted(root.iterdir()):
            archive.add(entry, arcname=entry.name, filter=keep)
    return buffer.getvalue()


def last_line(data: bytes) -> str:
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _AcceptNew:  # a paramiko MissingHostKeyPolicy
    """Like OpenSSH's StrictHostKeyChecking=accept-new: a host seen for the first time is
    added to known_hosts; a changed key is refused (paramiko raises BadHostKeyException)."""

    def __init__(self, path: Path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.path.open("a") as known:
            known.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def target(topo: Topology, name: str) -> Target:
    """The target for --target vagrant or --target ssh (called by lab.targets.get)."""
    if name == "vagrant":
        return VagrantTarget(topo)
    if name == "ssh":
        return SshTarget(topo)
    raise LabError(f"--target {name!r}: choose local, vagrant or ssh")
