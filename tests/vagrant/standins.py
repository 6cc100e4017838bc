"""Stand-ins for what an openSUSE Leap 15.6 VM gives the provision scripts, used inside the
Leap-like chroot that tests/vagrant/leap.py builds (see there). Standard library only: it runs
under the host's Python through /.host, since the chroot hides every Python of the host.

Each stand-in behaves like the real program as far as the scripts can tell, refuses what the
real one refuses (unknown package names, a unit whose ExecStart is not an executable, a
daemon started as the wrong user ...) and appends what it did to a JSON-lines record that
the tests read. Daemons are real processes (sleeping) with real pid files: `kill -0` works.

    standins.py zypper|rpm|systemctl|nft|nginx|memcached|initdb|pg_ctl|psql|python|pip|
                mod_wsgi-express|apachectl|stub ARGS...
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shlex
import signal
import sys
import time
from pathlib import Path

STATE = Path("/var/lib/standin")
RECORDS = STATE / "records.jsonl"
CATALOGUE = STATE / "catalogue.json"  # the Leap 15.6 packages: written by leap.py
RPMDB = STATE / "rpmdb.json"
SYSTEMD = STATE / "systemd.json"
NFT = STATE / "nft.ruleset"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
UNIT_DIRS = (Path("/etc/systemd/system"), Path("/usr/lib/systemd/system"))
HERE = Path(__file__).resolve()


def record(tool: str, **fields) -> None:
    with RECORDS.open("a") as out:
        out.write(json.dumps({"tool": tool, **fields}) + "\n")


def fail(message: str, code: int = 1):
    print(message, file=sys.stderr)
    sys.exit(code)


def load(path: Path, default):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def save(path: Path, value) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)


def wrapper(path: Path, tool: str, *fixed: str) -> None:
    """An executable at path that runs this file's `tool` with fixed args first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = " ".join(shlex.quote(a) for a in (sys.executable, str(HERE), tool, *fixed))
    path.write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
    path.chmod(0o755)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


# --- packages ------------------------------------------------------------------------------


def zypper(args: list[str]) -> None:
    if os.geteuid() != 0:
        fail("Root privileges are required for installing or uninstalling packages.", 5)
    words = [a for a in args if not a.startswith("-")]
    if not words or words[0] not in ("install", "in"):
        fail(f"zypper stand-in: only 'install' is modelled, got {args}", 2)
    if "--non-interactive" not in args and "-n" not in args:
        fail("zypper stand-in: would wait for an answer (no --non-interactive)", 2)
    names = words[1:]
    catalogue = json.loads(CATALOGUE.read_text())
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        record("zypper", action="refused", packages=unknown)
        fail(f"No provider of '{unknown[0]}' found.", 104)  # ZYPPER_EXIT_INF_CAP_NOT_FOUND
    installed = load(RPMDB, {})
    todo: list[str] = []

    def want(name: str) -> None:  # with its dependencies first, like the solver
        if name in installed or name in todo:
            return
        for dep in catalogue[name].get("requires", []):
            want(dep)
        todo.append(name)

    for name in names:
        want(name)
    for name in todo:
        install_package(name, catalogue[name])
        installed[name] = catalogue[name].get("version", "1.0-150600.1.1")
    save(RPMDB, installed)
    record("zypper", action="install", requested=names, installed=todo,
           no_recommends="--no-recommends" in args)


def install_package(name: str, spec: dict) -> None:
    for group, gid in spec.get("groups", {}).items():
        add_line("/etc/group", group, f"{group}:x:{gid}:")
    for user, (uid, group) in spec.get("users", {}).items():
        gid = next(line.split(":")[2] for line in Path("/etc/group").read_text().splitlines()
                   if line.split(":")[0] == group)
        add_line("/etc/passwd", user,
                 f"{user}:x:{uid}:{gid}:{name} daemon:/var/lib/{user}:/sbin/nologin")
        add_line("/etc/shadow", user, f"{user}:!:19000::::::")
    for path in spec.get("dirs", []):
        Path(path).mkdir(parents=True, exist_ok=True)
    for path, kind in spec.get("files", {}).items():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind.startswith("host:"):  # the real program, from the host (rsync, envsubst ...)
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to("/.host" + kind[5:])
        elif kind == "file":
            target.write_text(f"{name}\n")
        else:
            wrapper(target, kind)


def add_line(path: str, key: str, line: str) -> None:
    text = Path(path).read_text()
    if not any(entry.split(":")[0] == key for entry in text.splitlines()):
        Path(path).write_text(text + line + "\n")


def rpm(args: list[str]) -> None:
    if not args or args[0] != "-q":
        fail(f"rpm stand-in: only -q is modelled, got {args}", 2)
    installed = load(RPMDB, {})
    code = 0
    for name in args[1:]:
        if name in installed:
            print(f"{name}-{installed[name]}.x86_64")
        else:
            print(f"package {name} is not installed")
            code = 1
    sys.exit(code)


# --- systemd -------------------------------------------------------------------------------


def unit_file(unit: str) -> Path | None:
    for directory in UNIT_DIRS:
        if (directory / unit).is_file():
            return directory / unit
    return None


def parse_unit(path: Path) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"{path}: cannot parse line {raw!r}")
        key, value = line.split("=", 1)
        current[key.strip()] = value.strip()
    return sections


def resolve(executable: str) -> str | None:
    """systemd's rule: an absolute path, or a name found in its fixed search path."""
    if executable.startswith("/"):
        return executable if os.access(executable, os.X_OK) and Path(executable).is_file() else None
    for directory in SYSTEMD_PATH.split(":"):
        candidate = Path(directory) / executable
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


class Systemd:
    def __init__(self):
        self.state = load(SYSTEMD, {"loaded": {}, "active": {}, "enabled": []})

    def save(self) -> None:
        save(SYSTEMD, self.state)

    def file_hash(self, unit: str) -> str | None:
        path = unit_file(unit)
        return hashlib.sha256(path.read_bytes()).hexdigest() if path else None

    def config(self, unit: str) -> dict[str, dict[str, str]]:
        path = unit_file(unit)
        if path is None:
            fail(f"Failed to start {unit}: Unit {unit} not found.", 5)
        if self.state["loaded"].get(unit) not in (None, self.file_hash(unit)):
            record("systemctl", action="warning", unit=unit,
                   message="unit file changed on disk: run 'systemctl daemon-reload'")
        try:
            sections = parse_unit(path)
        except ValueError as exc:
            fail(str(exc), 1)
        service = sections.get("Service", {})
        argv = shlex.split(service.get("ExecStart", ""))
        if not argv:
            fail(f"{unit} has no ExecStart= setting. Refusing.", 1)
        if resolve(argv[0]) is None:
            fail(f"{path}: Neither a valid executable name nor an absolute path: {argv[0]}", 1)
        for key in ("PIDFile",):
            if key in service and not service[key].startswith("/"):
                fail(f"{path}: {key}= path is not absolute: {service[key]}", 1)
        return sections

    def active(self, unit: str) -> bool:
        entry = self.state["active"].get(unit)
        if entry is None:
            return False
        return entry.get("pid") is None or pid_alive(entry["pid"])

    def run_exec(self, unit: str, line: str, main_pid: int | None = None) -> int:
        argv = [a.replace("$MAINPID", str(main_pid)) for a in shlex.split(line)]
        argv[0] = resolve(argv[0])
        env = {"PATH": SYSTEMD_PATH + ":/sbin:/bin", "LANG": "C.UTF-8"}
        pid = os.fork()
        if pid == 0:
            os.chdir("/")
            os.setsid()
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def start(self, unit: str) -> bool:
        if self.active(unit):
            return False
        service = self.config(unit)["Service"]
        kind = service.get("Type", "simple")
        code = self.run_exec(unit, service["ExecStart"])
        if code != 0:
            record("systemctl", action="failed", unit=unit, code=code)
            fail(f"Job for {unit} failed because the control process exited with error code.", 1)
        pid = None
        if kind == "forking" and "PIDFile" in service:
            pidfile = Path(service["PIDFile"])
            deadline = time.monotonic() + 10
            while True:
                try:
                    pid = int(pidfile.read_text().split()[0])
                    if pid_alive(pid):
                        break
                except (FileNotFoundError, ValueError, IndexError):
                    pass
                if time.monotonic() > deadline:
                    record("systemctl", action="failed", unit=unit, code="no pid file")
                    fail(f"{unit}: PID file {pidfile} not readable (yet?) after start", 1)
                time.sleep(0.05)
        elif kind == "oneshot" and service.get("RemainAfterExit", "no") not in ("yes", "true"):
            return True
        self.state["active"][unit] = {"pid": pid, "kill": service.get("KillSignal", "SIGTERM")}
        return True

    def stop(self, unit: str) -> bool:
        entry = self.state["active"].pop(unit, None)
        if entry is None or entry.get("pid") is None:
            return entry is not None
        pid = entry["pid"]
        if pid_alive(pid):
            os.kill(pid, getattr(signal, entry["kill"]))
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        return True

    def reload(self, unit: str) -> bool:
        service = self.config(unit)["Service"]
        if "ExecReload" not in service:
            fail(f"Failed to reload {unit}: Job type reload is not applicable for unit {unit}.", 1)
        if not self.active(unit):
            fail(f"Failed to reload {unit}: Unit {unit} is not active.", 1)
        code = self.run_exec(unit, service["ExecReload"], self.state["active"][unit]["pid"])
        if code != 0:
            fail(f"Job for {unit} failed (reload exited {code}).", 1)
        return True

    def enable(self, unit: str) -> bool:
        sections = self.config(unit)
        wanted = sections.get("Install", {}).get("WantedBy")
        if not wanted:
            fail(f"The unit files have no installation config (WantedBy=...) for {unit}.", 1)
        if unit in self.state["enabled"]:
            return False
        link = Path("/etc/systemd/system") / f"{wanted}.wants" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(unit_file(unit))
        self.state["enabled"].append(unit)
        return True

    def disable(self, unit: str) -> bool:
        if unit not in self.state["enabled"]:
            return False
        for link in Path("/etc/systemd/system").glob(f"*.wants/{unit}"):
            link.unlink()
        self.state["enabled"].remove(unit)
        return True


def systemctl(args: list[str]) -> None:
    if os.geteuid() != 0:
        fail("Failed to connect to bus: Operation not permitted", 1)
    flags = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    unknown = set(flags) - {"--now", "--quiet", "-q", "--no-pager"}
    if unknown or not words:
        fail(f"systemctl stand-in: not modelled: {args}", 2)
    verb, units = words[0], words[1:]
    systemd = Systemd()
    if verb == "daemon-reload":
        changed = False
        for directory in UNIT_DIRS:
            for path in directory.glob("*.service"):
                digest = systemd.file_hash(path.name)
                changed |= systemd.state["loaded"].get(path.name) != digest
                systemd.state["loaded"][path.name] = digest
        systemd.save()
        record("systemctl", action="daemon-reload", changed=changed)
        return
    if verb == "is-active":
        sys.exit(0 if all(systemd.active(u) for u in units) else 3)
    if verb == "is-enabled":
        sys.exit(0 if all(u in systemd.state["enabled"] for u in units) else 1)
    actions = {
        "start": lambda u: systemd.start(u),
        "stop": lambda u: systemd.stop(u),
        "restart": lambda u: (systemd.stop(u), systemd.start(u))[1],
        "reload": lambda u: systemd.reload(u),
        "enable": lambda u: systemd.enable(u) | (systemd.start(u) if "--now" in flags else False),
        "disable": lambda u: systemd.disable(u) | (systemd.stop(u) if "--now" in flags else False),
    }
    if verb not in actions or not units:
        fail(f"systemctl stand-in: not modelled: {args}", 2)
    for unit in units:
        if unit_file(unit) is None and verb != "stop":
            fail(f"Failed to {verb} {unit}: Unit file {unit} does not exist.", 5)
        if unit not in systemd.state["loaded"] and unit_file(unit):
            record("systemctl", action="warning", unit=unit,
                   message="unit never loaded: no daemon-reload after writing it")
        changed = actions[verb](unit)
        systemd.save()
        record("systemctl", action=verb, unit=unit, now="--now" in flags, changed=bool(changed))


# --- nftables ------------------------------------------------------------------------------


def nft(args: list[str]) -> None:
    if args[:1] == ["-f"] and len(args) == 2:
        text = Path(args[1]).read_text()
        if "table inet lab" not in text or text.count("{") != text.count("}"):
            fail(f"{args[1]}: Error: syntax error", 1)
        if "${" in text:
            fail(f"{args[1]}: Error: unexpected '$' (an unrendered template variable)", 1)
        NFT.write_text(text)
        record("nft", action="apply", file=args[1])
        return
    if args == ["list", "table", "inet", "lab"]:
        if NFT.exists():
            print(NFT.read_text())
            return
        fail("Error: No such file or directory; did you mean table 'lab' in family inet?", 1)
    fail(f"nft stand-in: not modelled: {args}", 2)


# --- daemons -------------------------------------------------------------------------------


def daemonize(name: str, pidfile: Path, as_user: str | None = None, on_hup=None) -> None:
    """Fork a sleeping daemon that writes pidfile (as as_user), removes it when stopped."""
    if os.fork() != 0:
        deadline = time.monotonic() + 5
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if as_user:
        entry = pwd.getpwnam(as_user)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    try:
        pidfile.write_text(f"{os.getpid()}\n")
    except OSError:
        os._exit(1)  # like memcached: cannot write its pid file after dropping privileges

    def stop(signum, frame):
        pidfile.unlink(missing_ok=True)
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, stop)
    signal.signal(signal.SIGHUP, lambda s, f: on_hup() if on_hup else None)
    while True:
        signal.pause()


def option(args: list[str], flag: str, default=None):
    return args[args.index(flag) + 1] if flag in args else default


def nginx(args: list[str]) -> None:
    prefix, conf = option(args, "-p"), option(args, "-c")
    if not conf or not Path(conf).is_file():
        fail(f'nginx: [emerg] open() "{conf}" failed (2: No such file or directory)', 1)
    text = Path(conf).read_text()
    user = re.search(r"^\s*user\s+(\S+?);", text, re.M)
    if user and not user_exists(user.group(1)):
        fail(f'nginx: [emerg] getpwnam("{user.group(1)}") failed in {conf}', 1)
    if "${" in text:
        fail(f"nginx: [emerg] unknown variable in {conf} (an unrendered template variable)", 1)
    if "upstream" in text and not re.search(r"^\s*server \S+:\d+;", text, re.M):
        fail(f"nginx: [emerg] no servers are inside upstream in {conf}", 1)
    pid = re.search(r"^\s*pid\s+(\S+?);", text, re.M)
    pidfile = Path(pid.group(1) if pid else f"{prefix}/logs/nginx.pid")
    if "-t" in args:
        record("nginx", action="test", conf=conf)
        return
    if "-s" in args:
        fail("nginx stand-in: -s not modelled", 2)
    record("nginx", action="start", conf=conf, upstreams=re.findall(r"server (\S+);", text))
    daemonize("nginx", pidfile, on_hup=lambda: record("nginx", action="reload", conf=conf))


def memcached(args: list[str]) -> None:
    user, pidfile = option(args, "-u"), option(args, "-P")
    if os.geteuid() == 0 and not user:
        fail("can't run as root without the -u switch", 71)
    if user and not user_exists(user):
        fail(f"can't find the user {user} to switch to", 71)
    if "-d" not in args or not pidfile:
        fail("memcached stand-in: expected -d and -P", 2)
    record("memcached", action="start", argv=args)
    daemonize("memcached", Path(pidfile), as_user=user)
    if not Path(pidfile).exists():
        fail(f"Could not open the pid file {pidfile} for writing: Permission denied", 1)


def pg_refuse_root(tool: str) -> None:
    if os.geteuid() == 0:
        fail(f"{tool}: error: cannot be run as root\n{tool}: hint: Please log in as the "
             "(unprivileged) user that will own the server process.", 1)


def initdb(args: list[str]) -> None:
    pg_refuse_root("initdb")
    data = Path(option(args, "-D"))
    if any(data.iterdir()):
        fail(f'initdb: error: directory "{data}" exists but is not empty', 1)
    (data / "PG_VERSION").write_text("16\n")
    (data / "postgresql.conf").write_text("# stand-in postgresql.conf\n")
    (data / "pg_hba.conf").write_text("local all all peer\n")
    record("initdb", data=str(data), argv=args)


def pg_ctl(args: list[str]) -> None:
    pg_refuse_root("pg_ctl")
    data = Path(option(args, "-D"))
    if args[-1] != "start":
        fail(f"pg_ctl stand-in: not modelled: {args}", 2)
    if not (data / "PG_VERSION").exists():
        fail(f'pg_ctl: directory "{data}" is not a database cluster directory', 1)
    settings = {}
    conf = (data / "postgresql.conf").read_text()
    if "include_if_exists = 'lab.conf'" in conf and (data / "lab.conf").exists():
        for line in (data / "lab.conf").read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = (part.strip() for part in line.split("=", 1))
                settings[key] = value.strip("'")
    library = settings.get("shared_preload_libraries")
    if library and not Path(f"/usr/lib/postgresql16/lib64/{library}.so").exists():
        fail(f'FATAL:  could not access file "{library}": No such file or directory', 1)
    sockets = Path(settings.get("unix_socket_directories", "/run/postgresql"))
    port = settings.get("port", "5432")
    record("pg_ctl", action="start", data=str(data), settings=settings)
    pidfile = data / "postmaster.pid"
    daemonize("postgres", pidfile)
    (sockets / f".s.PGSQL.{port}").write_text("")  # the socket appears: the server is up


def psql(args: list[str]) -> None:
    host, port = option(args, "-h", "/run/postgresql"), option(args, "-p", "5432")
    if not Path(host, f".s.PGSQL.{port}").exists():
        fail(f'psql: error: connection to server on socket "{host}/.s.PGSQL.{port}" failed: '
             "No such file or directory", 2)
    sql = sys.stdin.read() if not sys.stdin.isatty() and "-c" not in args else ""
    shown = ["pw=<secret>" if a.startswith("pw=") else a for a in args]
    secret_given = any(a.startswith("pw=") and len(a) > 10 for a in args)
    record("psql", argv=shown, sql=sql, command=option(args, "-c"), password_given=secret_given,
           user=pwd.getpwuid(os.geteuid()).pw_name)


# --- Python, pip, mod_wsgi -----------------------------------------------------------------


def python(args: list[str], venv: str | None = None) -> None:
    if args[:2] == ["-m", "venv"]:
        target = Path(args[2])
        (target / "bin").mkdir(parents=True, exist_ok=True)
        (target / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.9\n")
        wrapper(target / "bin" / "python", "python", "--venv", str(target))
        wrapper(target / "bin" / "pip", "pip", "--venv", str(target))
        record("python", action="venv", venv=str(target), interpreter=sys.argv[0])
        return
    if args and args[0].endswith("manage.py"):
        missing = [k for k in ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "LAB_DB_PASSWORD",
                               "LAB_DB_HOST") if not os.environ.get(k)]
        if missing:
            fail(f"django: ImproperlyConfigured: {', '.join(missing)} not set", 1)
        record("django", venv=venv, command=args[1:], node=os.environ.get("LAB_NODE"))
        return
    fail(f"python stand-in: not modelled: {args}", 2)


def pip(args: list[str], venv: str) -> None:
    if "install" not in args:
        fail(f"pip stand-in: not modelled: {args}", 2)
    requirements = option(args, "-r")
    packages = []
    if requirements:
        for line in Path(requirements).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r "):
                fail("pip stand-in: nested requirements not modelled here", 2)
            if line:
                packages.append(line)
    else:
        packages = [a for a in args if not a.startswith("-") and a != "install"]
    if any(p.lower().startswith("mod_wsgi") for p in packages):
        apxs = resolve("apxs2") or resolve("apxs") or resolve("/usr/sbin/apxs2")
        if not apxs:
            fail("RuntimeError: The 'apxs' command appears not to be installed or is not "
                 "executable (install apache2-devel)", 1)
        if not resolve("gcc"):
            fail("error: command 'gcc' failed: No such file or directory", 1)
        if not Path("/usr/include/python3.11/Python.h").exists():
            fail("fatal error: Python.h: No such file or directory (install python311-devel)", 1)
        wrapper(Path(venv) / "bin" / "mod_wsgi-express", "mod_wsgi-express")
    record("pip", venv=venv, packages=packages, no_cache="--no-cache-dir" in args)


def mod_wsgi_express(args: list[str]) -> None:
    if args[:1] != ["setup-server"]:
        fail(f"mod_wsgi-express stand-in: not modelled: {args}", 2)
    wsgi, root = Path(args[1]), Path(option(args, "--server-root"))
    if not wsgi.is_file():
        fail(f"mod_wsgi-express: no WSGI script {wsgi}", 1)
    for flag in ("--user", "--group"):
        name = option(args, flag)
        ok = user_exists(name) if flag == "--user" else any(
            line.split(":")[0] == name for line in Path("/etc/group").read_text().splitlines())
        if not ok:
            fail(f"mod_wsgi-express: {flag} {name}: no such {flag[2:]}", 1)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"pid_file": option(args, "--pid-file"), "envvars": option(args, "--envvars-script"),
                "user": option(args, "--user"), "argv": args}
    (root / "standin.json").write_text(json.dumps(settings))
    wrapper(root / "apachectl", "apachectl", str(root))
    record("mod_wsgi-express", action="setup-server", root=str(root), argv=args)


def apachectl(args: list[str]) -> None:
    root, command = Path(args[0]), args[1:]
    settings = json.loads((root / "standin.json").read_text())
    if command != ["start"]:
        fail(f"apachectl stand-in: not modelled: {command}", 2)
    envvars = Path(settings["envvars"])
    if not envvars.is_file():
        fail(f"apachectl: {envvars}: No such file or directory", 1)
    if not resolve("/usr/sbin/httpd"):
        fail("apachectl: /usr/sbin/httpd: not found (install apache2)", 1)
    record("apachectl", action="start", root=str(root))
    daemonize("httpd", Path(settings["pid_file"]))


def stub(args: list[str]) -> None:
    record("stub", argv=args)


def main() -> None:
    tool, args = sys.argv[1], sys.argv[2:]
    venv = None
    if args[:1] == ["--venv"]:
        venv, args = args[1], args[2:]
    if tool == "python":
        python(args, venv)
        return
    if tool == "pip":
        pip(args, venv)
        return
    handlers = {"zypper": zypper, "rpm": rpm, "systemctl": systemctl, "nft": nft,
                "nginx": nginx, "memcached": memcached, "initdb": initdb, "pg_ctl": pg_ctl,
                "psql": psql, "mod_wsgi-express": mod_wsgi_express, "apachectl": apachectl,
                "stub": stub}
    handlers[tool](args)


if __name__ == "__main__":
    main()
