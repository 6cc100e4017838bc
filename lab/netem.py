"""A delay on one node's lab link: ``tc netem`` where the kernel has it, else a userspace
delayer that does the same job through netfilter's NFQUEUE.

Real netem is the first choice: it delays every packet the node sends. Some kernels are
built without it (``CONFIG_NET_SCH_NETEM`` unset: ``tc`` then says "Specified qdisc kind is
unknown"), and so are the small VMs this lab and its CI run on. There the local lab falls
back to:

- one iptables rule, in the node's namespace only, that queues every packet *arriving* on
  the node's lab interface (mangle PREROUTING, ``-i eth0``) to NFQUEUE queue ``QUEUE``, with
  ``--queue-bypass`` so that packets pass undelayed (never dropped) while no delayer listens;
- a delayer (``python -m lab.netem serve``) living in that namespace, its pid file under
  ``/var/lib/django-lab/nodes/<node>/run/``. It notes the time each packet arrives, and once
  the oldest held packet is due it accepts, with one batch verdict, every packet queued up to
  it: packets go on in the order they came, each after the delay. It speaks netlink itself
  (the standard library's AF_NETLINK socket): no compiled binding, nothing to build, and the
  packets' bytes never cross into userspace (metadata only).

Why arriving packets, when netem delays departing ones: every exchange with the node (a
query and its answer, a ping, a TCP segment and its ACK) gains the same round trip either
way, which is what a class measures. But a packet held on its way *out* still belongs to
its TCP socket, and TCP Small Queues lets a socket keep only about a millisecond's worth of
data below it: netem lets go of the packet's socket for exactly this reason, an NFQUEUE rule
cannot. Held on the way out, a bulk reply from the database at 25 ms crawled at 0.2 MB/s;
held on the way in, it runs at ~90 MB/s.

``fab down`` needs nothing from here: it ends every process in the lab's namespaces (the
delayer among them) and deleting a namespace deletes its rules. ``--clear`` removes the rule
first, then stops the delayer by its PID; the delayer accepts what it still holds on the way
out, so clearing loses no packet.

This module imports only the standard library at load time: the delayer runs from it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from lab import paths
from lab.errors import LabError

if TYPE_CHECKING:
    from lab.targets import Result, Target
    from lab.topology import Node

MAX_DELAY_MS = 10_000
QUEUE = 5620                    # the NFQUEUE queue number, one per namespace
QUEUE_MAXLEN = 100_000          # packets the kernel may hold for the delayer (netem: 1000)
RULE_COMMENT = "django-lab netem"
PIDFILE = "netem-delayer.pid"
LOGFILE = "netem-delayer.log"
IPTABLES = ("iptables", "iptables-legacy")  # nft-backed first (xt compat), then legacy


def check_delay(delay_ms: float) -> None:
    if not 0 < delay_ms <= MAX_DELAY_MS:
        raise LabError(f"--delay {delay_ms:g}: give milliseconds, more than 0 and at most "
                       f"{MAX_DELAY_MS}")


# ---------------------------------------------------------------------------------------
# The tooling side: apply or clear a delay on a node through its Target.

def apply(target: Target, node: Node, delay_ms: float) -> str:
    """Add the delay to every round trip over the node's lab link; say how it is done."""
    check_delay(delay_ms)
    dev = interface(target, node)
    done = run(target, node, ["tc", "qdisc", "replace", "dev", dev, "root", "netem",
                              "delay", f"{delay_ms:g}ms"])
    if done.returncode == 0:
        stop_delayer(target, node)          # a delayer left from before would delay twice
        remove_rule(target, node, dev)
        return (f"{node.name}: every packet it sends on {dev} waits {delay_ms:g} ms "
                "(tc netem)")
    if not netem_missing(done.stderr):
        raise LabError(f"tc netem on {node.name} failed: {done.stderr.strip()}")
    if target.name != "local":
        raise LabError(f"{node.name}'s kernel has no netem qdisc (sch_netem): load it "
                       "(modprobe sch_netem) or install the kernel's extra modules; the "
                       "userspace fallback runs on the local lab only")
    # A new delay replaces the old one: rule out first, so that the old delayer can let go
    # of every packet it holds before it leaves (packets pass undelayed meanwhile, ~0.3 s).
    remove_rule(target, node, dev)
    stop_delayer(target, node)
    pid = start_delayer(target, node, delay_ms)
    try:
        tool = add_rule(target, node, dev)
    except LabError:
        stop_delayer(target, node)
        raise
    return (f"{node.name}: every packet reaching it on {dev} waits {delay_ms:g} ms, so each "
            f"round trip with it takes {delay_ms:g} ms longer (userspace delayer, pid {pid}, "
            f"behind an {tool} NFQUEUE rule in {node.namespace}: this kernel has no tc netem)")


def clear(target: Target, node: Node) -> str:
    """Remove whatever delay the node has: the rule, then the delayer, and a netem qdisc."""
    dev = interface(target, node)
    removed = []
    if remove_rule(target, node, dev):
        removed.append("NFQUEUE rule")
    pid = stop_delayer(target, node)
    if pid is not None:
        removed.append(f"delayer pid {pid}")
    shown = run(target, node, ["tc", "qdisc", "show", "dev", dev, "root"])
    if " netem " in f" {shown.stdout} ":
        done = run(target, node, ["tc", "qdisc", "del", "dev", dev, "root"])
        if done.returncode != 0:
            raise LabError(f"tc on {node.name} could not remove netem: {done.stderr.strip()}")
        removed.append("tc netem")
    return f"{node.name}: no added delay (removed: {', '.join(removed) or 'nothing, none was set'})"


def run(target: Target, node: Node, argv: list[str]) -> Result:
    try:
        return target.run(node, argv, timeout=30)
    except FileNotFoundError as exc:  # the local target: ip itself is missing
        raise LabError(f"{exc.filename or 'ip'} not found: run 'make install'") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:3])} on {node.name} took over 30 s") from None


def interface(target: Target, node: Node) -> str:
    """The interface that carries the node's lab address: eth0 in a namespace, eth1 on a VM."""
    done = run(target, node, ["ip", "-o", "-4", "addr", "show", "to", node.address])
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) < 2:
        raise LabError(f"{node.name} has no interface with its address {node.address}: "
                       f"see fab status ({done.stderr.strip() or 'no such address'})")
    return fields[1]


def netem_missing(stderr: str) -> bool:
    """tc's words when the kernel has no netem qdisc (and no module to load)."""
    text = stderr.lower()
    return "qdisc kind is unknown" in text or "unknown qdisc" in text


def iptables(tool: str, op: str, dev: str) -> list[str]:
    """The command that checks (-C), adds (-A) or deletes (-D) the rule on the interface."""
    return [tool, "-w", "5", "-t", "mangle", op, "PREROUTING", "-i", dev,
            "-m", "comment", "--comment", RULE_COMMENT,
            "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]


def add_rule(target: Target, node: Node, dev: str) -> str:
    """Add the rule (once) with the first iptables that can; returns that tool's name."""
    errors = []
    for tool in IPTABLES:
        if run(target, node, iptables(tool, "-C", dev)).returncode == 0:
            return tool
        done = run(target, node, iptables(tool, "-A", dev))
        if done.returncode == 0:
            return tool
        said = done.stderr.strip().splitlines()
        errors.append(f"{tool}: {said[-1] if said else f'exit status {done.returncode}'}")
    raise LabError(f"could not add the NFQUEUE rule in {node.namespace} "
                   f"({'; '.join(errors)}): is iptables installed? (make install)")


def remove_rule(target: Target, node: Node, dev: str) -> bool:
    """Delete every copy of the rule, with whichever iptables made it; True if any was there.
    iptables-legacy is asked only if the node has legacy tables: asking would make them."""
    found = False
    legacy = run(target, node, ["cat", "/proc/net/ip_tables_names"]).stdout.split()
    for tool in IPTABLES:
        if tool == "iptables-legacy" and "mangle" not in legacy:
            continue
        for _ in range(100):
            if run(target, node, iptables(tool, "-C", dev)).returncode != 0:
                break
            found = True
            if run(target, node, iptables(tool, "-D", dev)).returncode != 0:
                break
    return found


def run_dir(node: Node) -> Path:
    return paths.NODES / node.name / "run"


def start_delayer(target: Target, node: Node, delay_ms: float, wait: float = 10.0) -> int:
    """Start the delayer in the node's namespace; returns its PID once it holds the queue."""
    directory = run_dir(node)
    if not directory.parent.is_dir():
        raise LabError(f"{directory.parent} is missing: is the lab up? (fab up)")
    directory.mkdir(exist_ok=True)
    pidfile = directory / PIDFILE
    pidfile.unlink(missing_ok=True)
    argv = [*target.python(node), "-m", "lab.netem", "serve", "--delay", f"{delay_ms:g}",
            "--queue", str(QUEUE), "--pidfile", str(pidfile)]
    with open(directory / LOGFILE, "ab") as log:
        proc = target.popen(node, argv, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if read_pid(pidfile) == proc.pid:
            return proc.pid
        if proc.poll() is not None:
            raise LabError(f"the delayer on {node.name} did not start: "
                           f"{last_line(directory / LOGFILE)} (log: {directory / LOGFILE})")
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    raise LabError(f"the delayer on {node.name} was not ready in {wait:g} s "
                   f"(log: {directory / LOGFILE})")


def stop_delayer(target: Target, node: Node, wait: float = 10.0) -> int | None:
    """Stop the node's delayer by the PID in its pid file, if that PID is a delayer living in
    the node's namespace; returns the PID stopped, or None if none ran."""
    from lab import netns

    pidfile = run_dir(node) / PIDFILE
    pid = read_pid(pidfile)
    if pid is None:
        return None
    if target.name != "local" or pid not in netns.pids_in(node.namespace) \
            or not is_delayer(pid):
        pidfile.unlink(missing_ok=True)     # stale: that process is gone (or another's now)
        return None
    netns.send(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while is_delayer(pid):
        if time.monotonic() > deadline:
            netns.send(pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    pidfile.unlink(missing_ok=True)
    return pid


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_delayer(pid: int) -> bool:
    """True while the PID is a living (not zombie) 'lab.netem serve' process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"lab.netem" in cmdline and b"serve" in cmdline


def last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------------------------
# The delayer: an NFQUEUE listener over a plain netlink socket (linux/netfilter/
# nfnetlink_queue.h). Messages are a struct nlmsghdr, a struct nfgenmsg, then attributes.

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 2, 3
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_CFG_MASK, NFQA_CFG_FLAGS = 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 4      # hand us GSO packets whole: no segmenting, fewer messages
NF_ACCEPT = 1

NLMSGHDR = struct.Struct("=IHHII")
NLATTR = struct.Struct("=HH")
PACKET_TYPE = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET


def attr(kind: int, payload: bytes) -> bytes:
    pad = b"\0" * (-len(payload) % 4)
    return NLATTR.pack(NLATTR.size + len(payload), kind) + payload + pad


def message(kind: int, queue: int, attrs: bytes, seq: int, flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + attrs
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind,
                         flags, seq, 0) + body


def config(queue: int, command: int, seq: int) -> bytes:
    attrs = attr(NFQA_CFG_CMD, struct.pack("!BxH", command, socket.AF_INET))
    if command == NFQNL_CFG_CMD_BIND:
        attrs += (attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
                  + attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))
                  + attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_GSO))
                  + attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_GSO)))
    return message(NFQNL_MSG_CONFIG, queue, attrs, seq, NLM_F_REQUEST | NLM_F_ACK)


def verdict_upto(queue: int, packet_id: int) -> bytes:
    """Accept every packet of the queue whose id is packet_id or earlier, in queue order."""
    return message(NFQNL_MSG_VERDICT_BATCH, queue,
                   attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)), 0)


def parse(buf: bytes) -> tuple[list[int], list[tuple[int, int]]]:
    """The packet ids, and the (seq, errno) of the acks/errors, in one netlink read."""
    ids, acks = [], []
    offset = 0
    while offset + NLMSGHDR.size <= len(buf):
        length, kind, _flags, seq, _pid = NLMSGHDR.unpack_from(buf, offset)
        if length < NLMSGHDR.size:
            break
        end = min(offset + length, len(buf))
        if kind == PACKET_TYPE:
            at = offset + NLMSGHDR.size + 4                 # past the nfgenmsg
            while at + NLATTR.size <= end:
                size, akind = NLATTR.unpack_from(buf, at)
                if size < NLATTR.size:
                    break
                if akind & 0x3FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", buf, at + NLATTR.size)[0])
                    break
                at += (size + 3) & ~3
        elif kind == NLMSG_ERROR:
            acks.append((seq, -struct.unpack_from("=i", buf, offset + NLMSGHDR.size)[0]))
        offset += (length + 3) & ~3
    return ids, acks


class Stop(Exception):
    """SIGTERM or SIGINT: release what is held, then leave."""


class Delayer:
    def __init__(self, queue: int, delay_ms: float):
        self.queue = queue
        self.delay = delay_ms / 1000
        self.held: deque[tuple[float, int]] = deque()   # (due, packet id), oldest first
        self.last_id: int | None = None                  # the newest packet seen
        self.early = 0.0                                  # seconds: see learn()
        self.max_early = min(0.00025, self.delay / 4)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.seq = 0
        self.request(NFQNL_CFG_CMD_BIND)

    def request(self, command: int) -> None:
        """Send a config command and wait for its ack; packets met meanwhile are kept."""
        self.seq += 1
        self.sock.send(config(self.queue, command, self.seq))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], 0.5)
            if not ready:
                continue
            ids, acks = parse(self.sock.recv(1 << 16))
            self.hold(ids, time.monotonic())
            for seq, errno in acks:
                if seq == self.seq and errno:
                    raise OSError(errno, f"NFQUEUE queue {self.queue}: {os.strerror(errno)}")
                if seq == self.seq:
                    return
        raise OSError(f"NFQUEUE queue {self.queue}: no answer from the kernel")

    def hold(self, ids: list[int], now: float) -> None:
        due = now + self.delay
        for packet_id in ids:
            self.held.append((due, packet_id))
            self.last_id = packet_id

    def release(self, now: float) -> None:
        """Accept, with one verdict, every held packet that is due (and all before it)."""
        last = None
        held, cutoff = self.held, now + self.early
        while held and held[0][0] <= cutoff:
            last = held.popleft()[1]
        if last is not None:
            self.sock.send(verdict_upto(self.queue, last))

    def run(self) -> None:
        sock, held = self.sock, self.held
        while True:
            asleep = time.monotonic()
            timeout = max(0.0, held[0][0] - self.early - asleep) if held else None
            ready, _, _ = select.select([sock], [], [], timeout)
            now = time.monotonic()
            if ready:
                # Waking costs as long for a packet as for a timer (see learn()): the packet
                # that woke us came about that long ago, and not before we slept.
                arrived = max(asleep, now - self.early)
                while True:  # drain: every packet notice waiting now
                    try:
                        buf = sock.recv(1 << 16, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    self.hold(parse(buf)[0], arrived)
            elif timeout and held:
                self.learn(now - held[0][0])
            self.release(time.monotonic())

    def learn(self, late: float) -> None:
        """A timed wake-up comes late by the timer's and the scheduler's latency (tens of
        microseconds, more on a VM): aim that much early, learnt as a moving average."""
        self.early = min(max(self.early + late / 8, 0.0), self.max_early)

    def close(self) -> None:
        """Accept all the kernel still holds for us (the rule is gone by now), then unbind:
        unbinding or exiting would drop whatever is left in the queue."""
        with contextlib.suppress(OSError):
            while True:
                try:
                    buf = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                self.hold(parse(buf)[0], time.monotonic())
            if self.last_id is not None:
                self.sock.send(verdict_upto(self.queue, self.last_id))
            self.request(NFQNL_CFG_CMD_UNBIND)
        self.sock.close()


def serve(delay_ms: float, queue: int, pidfile: Path | None) -> int:
    def stop(signum, frame):
        raise Stop

    try:
        delayer = Delayer(queue, delay_ms)
    except OSError as exc:
        print(f"netem delayer: cannot bind NFQUEUE queue {queue}: {exc}", file=sys.stderr)
        return 1
    try:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if pidfile is not None:
            pidfile.write_text(f"{os.getpid()}\n")
        print(f"netem delayer: pid {os.getpid()}, queue {queue}, delay {delay_ms:g} ms",
              flush=True)
        delayer.run()
    except Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut this
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        delayer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.netem",
                                     description="hold each NFQUEUE'd packet, then accept it")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("serve", help="run the delayer (in the node's namespace)")
    one.add_argument("--delay", type=float, required=True, help="milliseconds")
    one.add_argument("--queue", type=int, default=QUEUE)
    one.add_argument("--pidfile", type=Path)
    args = parser.parse_args(argv)
    if not 0 < args.delay <= MAX_DELAY_MS:
        parser.error(f"--delay {args.delay:g}: give milliseconds from 0 to {MAX_DELAY_MS}")
    return serve(args.delay, args.queue, args.pidfile)


if __name__ == "__main__":
    sys.exit(main())

