"""A stand-in openSUSE Leap 15.6 VM for the provision scripts' zypper/systemd branch.

No VM boots here, so each "VM" is a chroot: an overlay of this machine's root with a private
upper directory (in the test's tmp_path), inside new mount, network and PID namespaces:

- everything Debian-specific or lab-specific on the host is hidden by whiteouts (apt-get,
  dpkg, the host's Pythons, nginx, Apache, memcached, PostgreSQL, nft, gcc, envsubst,
  /usr/local, the local lab's /var/lib/django-lab and /opt/django-lab ...);
- /etc/passwd, group, shadow and os-release are Leap's; the repo is bind-mounted read-only
  at /vagrant, as Vagrant's rsync folder would be;
- zypper, rpm and systemctl are stand-ins (standins.py) that accept only the package names
  of LEAP_15_6 below; "installing" one adds its users and its programs (stand-ins again, or
  the host's real rsync and envsubst);
- the new network namespace has no route anywhere and the new PID namespace ends every
  daemon the stand-ins started when the session ends. The host's files are never written:
  all writes land in the upper directory.

    vm = Vm(tmp_path / "app1"); vm.run(steps) -> each step's returncode and output;
    vm.records() -> what the stand-ins did (JSON lines); vm.path("/etc/...") -> a file it wrote
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HOST_PYTHON = Path(os.path.realpath(sys.executable))

# Package names that exist in openSUSE Leap 15.6 (main OSS repository), with what the
# stand-in installs for each. Anything else is refused like zypper does ("No provider").
LEAP_15_6: dict[str, dict] = {
    "python311": {"files": {"/usr/bin/python3.11": "python"}, "requires": ["python311-base"]},
    "python311-base": {},
    "python311-devel": {"files": {"/usr/include/python3.11/Python.h": "file"},
                        "requires": ["python311"]},
    "python311-pip": {"requires": ["python311"]},
    "apache2": {"files": {"/usr/sbin/httpd": "stub", "/usr/sbin/apachectl": "stub"},
                "requires": ["apache2-prefork", "system-user-wwwrun"]},
    "apache2-prefork": {},
    "apache2-event": {},
    "apache2-worker": {},
    "apache2-devel": {"files": {"/usr/bin/apxs2": "stub"}, "requires": ["apache2"]},
    "system-user-wwwrun": {"groups": {"www": 8}, "users": {"wwwrun": (30, "www")}},
    "nginx": {"files": {"/usr/sbin/nginx": "nginx"}, "groups": {"nginx": 474},
              "users": {"nginx": (474, "nginx")}},
    "memcached": {"files": {"/usr/sbin/memcached": "memcached"}, "groups": {"memcached": 475},
                  "users": {"memcached": (475, "memcached")}},
    "postgresql": {},
    "postgresql-server": {"requires": ["postgresql16-server"]},
    "postgresql-contrib": {"requires": ["postgresql16-contrib"]},
    "postgresql16": {"files": {"/usr/bin/psql": "psql"}, "groups": {"postgres": 26},
                     "users": {"postgres": (26, "postgres")}, "requires": ["postgresql"]},
    "postgresql16-server": {"files": {"/usr/lib/postgresql16/bin/initdb": "initdb",
                                      "/usr/lib/postgresql16/bin/pg_ctl": "pg_ctl",
                                      "/usr/lib/postgresql16/bin/postgres": "stub"},
                            "requires": ["postgresql16"]},
    "postgresql16-contrib": {"files": {
        "/usr/lib/postgresql16/lib64/pg_stat_statements.so": "file"},
        "requires": ["postgresql16"]},
    "tcpdump": {"files": {"/usr/sbin/tcpdump": "stub"}},
    "nftables": {"files": {"/usr/sbin/nft": "nft"}},
    "rsync": {"files": {"/usr/bin/rsync": "host:/usr/bin/rsync"}},
    "gettext-runtime": {"files": {"/usr/bin/envsubst": "host:/usr/bin/envsubst"}},
    "gcc": {"files": {"/usr/bin/gcc": "stub"}},
    # In the box already, or harmless to ask for.
    **{name: {} for name in ("bash", "coreutils", "util-linux", "sudo", "systemd", "zypper",
                             "rpm", "iproute2", "tar", "gzip", "curl", "openssh", "shadow",
                             "findutils", "grep", "sed", "which", "procps", "kmod")},
}
# What the box has before provisioning (rsync: Vagrant installs it for the synced folder).
BOX_PACKAGES = ("bash", "coreutils", "util-linux", "sudo", "systemd", "zypper", "rpm",
                "iproute2", "tar", "gzip", "curl", "openssh", "shadow", "findutils", "grep",
                "sed", "which", "procps", "kmod", "rsync")

# Host paths a Leap box does not have (or that a package must bring): hidden by whiteouts.
HIDDEN = [
    "/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/apt-cache", "/usr/bin/apt-config",
    "/usr/bin/dpkg", "/usr/bin/dpkg-query", "/usr/sbin/policy-rc.d",
    "/usr/bin/python3", "/usr/bin/python3.11", "/usr/bin/python3-config",
    "/usr/bin/python3.11-config", "/usr/local/bin", "/usr/local/sbin",
    "/usr/sbin/nginx", "/usr/bin/memcached", "/usr/sbin/memcached", "/usr/sbin/apache2",
    "/usr/sbin/apachectl", "/usr/sbin/apache2ctl", "/usr/bin/apxs", "/usr/bin/apxs2",
    "/usr/lib/postgresql", "/usr/bin/psql", "/usr/bin/pg_ctl", "/usr/sbin/nft",
    "/usr/bin/tcpdump", "/usr/sbin/tcpdump", "/usr/bin/gcc", "/usr/bin/cc",
    "/usr/bin/envsubst",
    "/var/lib/django-lab", "/opt/django-lab", "/etc/systemd/system", "/run/systemd",
]

PASSWD = """root:x:0:0:root:/root:/bin/bash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:Daemon:/sbin:/sbin/nologin
messagebus:x:499:499:User for D-Bus:/run/dbus:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/var/lib/nobody:/bin/bash
vagrant:x:1000:100:vagrant:/home/vagrant:/bin/bash
"""
GROUP = """root:x:0:
bin:x:1:daemon
daemon:x:2:
users:x:100:
messagebus:x:499:
nogroup:x:65533:nobody
nobody:x:65534:
"""
SHADOW = "".join(f"{line.split(':')[0]}:!:19000::::::\n" for line in PASSWD.splitlines())
OS_RELEASE = 'NAME="openSUSE Leap"\nVERSION="15.6"\nID="opensuse-leap"\nVERSION_ID="15.6"\n'
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # sudo's secure_path on Leap


@dataclass
class Step:
    """One provisioner, as Vagrant runs it: a shell script with env, or a file upload."""

    name: str
    inline: str = ""
    env: dict[str, str] | None = None
    source: str | None = None       # file provisioner: host path ...
    destination: str | None = None  # ... copied here, owned by the SSH user (vagrant)


def steps_from_plan(machine: dict) -> list[Step]:
    """The provisioners of one machine of the evaluated Vagrant config, in order."""
    steps = []
    for prov in machine["provisioners"]:
        if prov["type"] == "file":
            steps.append(Step(prov["name"], source=prov["source"],
                              destination=prov["destination"]))
        elif prov["type"] == "shell":
            steps.append(Step(prov["name"], inline=prov["inline"], env=prov["env"]))
        else:
            raise AssertionError(f"unexpected provisioner type {prov['type']}")
    return steps


class Vm:
    """One stand-in VM: its upper directory persists across sessions (a reboot keeps disk)."""

    def __init__(self, base: Path):
        self.base = base
        self.upper, self.work, self.merged = base / "upper", base / "work", base / "merged"
        for directory in (self.upper, self.work, self.merged):
            directory.mkdir(parents=True, exist_ok=True)
        self._seed()

    def path(self, inside: str) -> Path:
        """Where a file the VM wrote is, seen from the host (after a session)."""
        return self.upper / inside.lstrip("/")

    def _seed(self) -> None:
        up = self.upper
        for hidden in HIDDEN:
            if os.path.lexists(hidden):
                self._parents(hidden)
                node = up / hidden.lstrip("/")
                if not os.path.lexists(node):
                    os.mknod(node, stat.S_IFCHR | 0o000, os.makedev(0, 0))  # whiteout
        for inside, text, mode in (("/etc/passwd", PASSWD, 0o644), ("/etc/group", GROUP, 0o644),
                                   ("/etc/shadow", SHADOW, 0o640),
                                   ("/etc/os-release", OS_RELEASE, 0o644)):
            self._parents(inside)
            target = up / inside.lstrip("/")
            target.write_text(text)
            target.chmod(mode)
        for mountpoint in ("/.host", "/vagrant"):
            (up / mountpoint.lstrip("/")).mkdir(exist_ok=True)
        state = up / "var/lib/standin"
        self._parents("/var/lib/standin/x")
        state.mkdir(exist_ok=True)
        (state / "catalogue.json").write_text(json.dumps(LEAP_15_6))
        (state / "rpmdb.json").write_text(json.dumps({p: "1.0-150600.1.1" for p in BOX_PACKAGES}))
        (state / "records.jsonl").touch()
        (state / "records.jsonl").chmod(0o666)  # daemons' stand-ins record as their users
        python = f"/.host{HOST_PYTHON}"
        for tool, where in (("zypper", "/usr/bin/zypper"), ("rpm", "/usr/bin/rpm"),
                            ("systemctl", "/usr/bin/systemctl")):
            self._parents(where)
            wrapper = up / where.lstrip("/")
            if os.path.lexists(wrapper):
                wrapper.unlink()
            wrapper.write_text(f'#!/bin/sh\nexec {python} /vagrant/tests/vagrant/standins.py '
                               f'{tool} "$@"\n')
            wrapper.chmod(0o755)

    def _parents(self, inside: str) -> None:
        """Create the parents of a path in the upper dir with the host's owner and mode."""
        current = Path("/")
        for part in Path(inside).parent.parts[1:]:
            current = current / part
            target = self.upper / str(current).lstrip("/")
            if not target.exists():
                target.mkdir()
                if current.is_dir():
                    info = current.stat()
                    os.chown(target, info.st_uid, info.st_gid)
                    target.chmod(stat.S_IMODE(info.st_mode))

    def records(self) -> list[dict]:
        text = self.path("/var/lib/standin/records.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def run(self, steps: list[Step], timeout: float = 300) -> list[dict]:
        """Run the steps in one boot of the VM; returns each step's returncode and output."""
        spec = self.base / "session.json"
        result = self.base / "result.json"
        result.unlink(missing_ok=True)
        spec.write_text(json.dumps({
            "upper": str(self.upper), "work": str(self.work), "merged": str(self.merged),
            "repo": str(REPO), "result": str(result),
            "steps": [step.__dict__ for step in steps],
        }))
        # bash is PID 1 of the new PID namespace: it reaps the stand-in daemons' children;
        # when it exits the kernel ends every process left in the namespace.
        argv = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
                "bash", "-c", '"$@"; exit $?', "_",
                str(HOST_PYTHON), str(Path(__file__)), str(spec)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not result.exists():
            raise AssertionError(f"stand-in VM session failed ({done.returncode}): "
                                 f"{done.stdout}{done.stderr}")
        return json.loads(result.read_text())


def session(spec_path: str) -> None:
    """Inside the namespaces: mount the VM's root, run each step chrooted, write results."""
    spec = json.loads(Path(spec_path).read_text())
    merged = spec["merged"]

    def sh(*argv: str) -> None:
        subprocess.run(argv, check=True)

    sh("mount", "-t", "overlay", "overlay", "-o",
       f"lowerdir=/,upperdir={spec['upper']},workdir={spec['work']}", merged)
    fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", merged], capture_output=True,
                            text=True).stdout.strip()
    if fstype != "overlay":
        raise SystemExit(f"{merged} is not an overlay ({fstype!r}): refusing to go on")
    sh("mount", "--bind", "/", f"{merged}/.host")
    sh("mount", "-o", "remount,bind,ro", f"{merged}/.host")
    sh("mount", "--rbind", "/dev", f"{merged}/dev")
    sh("mount", "--make-rslave", f"{merged}/dev")
    sh("mount", "-t", "proc", "proc", f"{merged}/proc")
    for tmpfs in ("tmp", "run"):
        sh("mount", "-t", "tmpfs", "tmpfs", f"{merged}/{tmpfs}")
    sh("mount", "--bind", spec["repo"], f"{merged}/vagrant")
    sh("mount", "-o", "remount,bind,ro", f"{merged}/vagrant")
    os.makedirs(f"{merged}/etc/systemd/system", exist_ok=True)

    results = []
    records = Path(merged, "var/lib/standin/records.jsonl")
    for index, step in enumerate(spec["steps"]):
        with records.open("a") as out:
            out.write(json.dumps({"tool": "step", "index": index, "name": step["name"]}) + "\n")
        if step["source"]:
            target = Path(merged + step["destination"])
            shutil.copyfile(step["source"], target)
            os.chown(target, 1000, 100)
            target.chmod(0o644)
            results.append({"name": step["name"], "returncode": 0, "output": ""})
            continue
        env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb",
               **(step["env"] or {})}
        done = subprocess.run(["chroot", merged, "/usr/bin/env", "-i",
                               *(f"{k}={v}" for k, v in env.items()),
                               "/bin/bash", "-c", step["inline"]],
                              capture_output=True, text=True, cwd="/", timeout=240)
        results.append({"name": step["name"], "returncode": done.returncode,
                        "output": done.stdout + done.stderr})
    Path(spec["result"]).write_text(json.dumps(results))


if __name__ == "__main__":
    session(sys.argv[1])
