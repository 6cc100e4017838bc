"""fab netem without a lab: the checks on its input, the choice between tc netem and the
userspace delayer, the rule it adds and removes, and the delayer's netlink messages and
timing logic (the delayer against the real kernel is in test_netem_delayer.py)."""

from __future__ import annotations

import math
import os
import struct

import pytest

from lab import cli, control, netem, topology
from lab.errors import LabError
from lab.targets import Result, Target

NO_NETEM = "Error: Specified qdisc kind is unknown.\n"


class FakeTarget(Target):
    """Answers each command from a script of (argv prefix, Result); records every command."""

    name = "local"

    def __init__(self, answers=(), name="local"):
        super().__init__(topology.load())
        self.name = name
        self.answers = list(answers)
        self.commands: list[list[str]] = []

    def run(self, node, argv, *, extra_env=None, timeout=120):
        self.commands.append(list(argv))
        for prefix, result in self.answers:
            if argv[:len(prefix)] == prefix:
                return result
        return Result(1, "", "not scripted")

    def ran(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.commands if c[:len(prefix)] == list(prefix)]


def ok(stdout: str = "") -> Result:
    return Result(0, stdout, "")


def fail(stderr: str = "") -> Result:
    return Result(1, "", stderr)


ADDR = ok("2: eth0    inet 192.168.56.20/24 scope global eth0\\ valid_lft forever\n")


@pytest.fixture
def delayers(monkeypatch):
    """Stand-ins for starting and stopping the delayer process; records the calls."""
    calls = []
    monkeypatch.setattr(netem, "start_delayer",
                        lambda target, node, ms: calls.append(("start", ms)) or 4242)
    monkeypatch.setattr(netem, "stop_delayer",
                        lambda target, node: calls.append(("stop",)) and None)
    return calls


# --- bad input: one clear line --------------------------------------------------------

@pytest.mark.parametrize("delay", [0, -1, 10_001, math.nan, math.inf])
def test_a_delay_out_of_range_is_one_clear_line(delay):
    target = FakeTarget([(["ip"], ADDR)])
    with pytest.raises(LabError, match=r"^--delay .*: give milliseconds, more than 0") as err:
        control.netem(target, "db", delay)
    assert "\n" not in str(err.value)
    assert target.commands == []  # nothing was run on the node


def test_an_unknown_node_is_named():
    with pytest.raises(LabError, match="no node named 'dbb'.*nodes are: db, "):
        control.netem(FakeTarget(), "dbb", 5)


def test_the_task_needs_a_delay_or_clear_not_both():
    for delay, clear in ((None, False), (5.0, True)):
        with pytest.raises(LabError, match="give --delay MS, or --clear"):
            cli.netem("db", delay, clear, None)
    with pytest.raises(LabError, match="--delay 'abc': not a number"):
        cli.number("abc", float, "--delay")


# --- the choice of mechanism ----------------------------------------------------------

def test_real_netem_comes_first(delayers):
    target = FakeTarget([(["ip"], ADDR), (["tc"], ok()), (["cat"], ok())])
    said = control.netem(target, "db", 2)
    assert said == "db: every packet it sends on eth0 waits 2 ms (tc netem)"
    assert target.ran("tc") == [["tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
                                 "delay", "2ms"]]
    assert not target.ran("iptables", "-w", "5", "-t", "mangle", "-A")
    assert ("start", 2) not in delayers  # and a delayer left from before is stopped
    assert ("stop",) in delayers


def test_without_netem_the_delayer_and_its_rule_take_over(delayers):
    target = FakeTarget([(["ip"], ADDR), (["tc"], fail(NO_NETEM)),
                         (["iptables", "-w", "5", "-t", "mangle", "-A"], ok())])
    said = control.netem(target, "db", 2.5)
    assert said.startswith("db: every packet reaching it on eth0 waits 2.5 ms, so each round "
                           "trip with it takes 2.5 ms longer (userspace delayer, pid 4242, ")
    assert "iptables NFQUEUE rule in lab-db: this kernel has no tc netem" in said
    assert delayers == [("stop",), ("start", 2.5)]  # the old delayer first, then the new
    [added] = target.ran("iptables", "-w", "5", "-t", "mangle", "-A")
    assert added[6:] == ["PREROUTING", "-i", "eth0", "-m", "comment", "--comment",
                         "django-lab netem", "-j", "NFQUEUE", "--queue-num", str(netem.QUEUE),
                         "--queue-bypass"]


def test_a_rule_already_there_is_not_added_twice(delayers):
    target = FakeTarget([(["ip"], ADDR), (["tc"], fail(NO_NETEM)),
                         (["iptables", "-w", "5", "-t", "mangle", "-C"], ok())])
    control.netem(target, "db", 5)
    assert not target.ran("iptables", "-w", "5", "-t", "mangle", "-A")


def test_legacy_iptables_when_the_nft_one_cannot(delayers):
    target = FakeTarget([(["ip"], ADDR), (["tc"], fail(NO_NETEM)),
                         (["iptables-legacy", "-w", "5", "-t", "mangle", "-A"], ok())])
    assert "behind an iptables-legacy NFQUEUE rule" in control.netem(target, "db", 5)


def test_no_rule_means_no_delayer_left_running(delayers):
    target = FakeTarget([(["ip"], ADDR), (["tc"], fail(NO_NETEM))])
    with pytest.raises(LabError, match="could not add the NFQUEUE rule in lab-db .*make install"):
        control.netem(target, "db", 5)
    assert delayers == [("stop",), ("start", 5), ("stop",)]


def test_another_tc_failure_is_reported_not_worked_around(delayers):
    target = FakeTarget([(["ip"], ADDR), (["tc"], fail("RTNETLINK answers: No such device"))])
    with pytest.raises(LabError, match="tc netem on db failed: RTNETLINK answers: No such"):
        control.netem(target, "db", 5)
    assert ("start", 5) not in delayers


def test_remote_nodes_without_netem_are_told_what_to_load(delayers):
    target = FakeTarget([(["ip"], ADDR), (["tc"], fail(NO_NETEM))], name="vagrant")
    with pytest.raises(LabError, match="no netem qdisc .*modprobe sch_netem"):
        control.netem(target, "db", 5)
    assert delayers == []


def test_a_node_without_its_address_is_one_line():
    target = FakeTarget([(["ip"], ok(""))])
    with pytest.raises(LabError, match="db has no interface with its address 192.168.56.20"):
        control.netem(target, "db", 5)


# --- clearing --------------------------------------------------------------------------

def test_clear_removes_rule_then_delayer(monkeypatch):
    order = []
    monkeypatch.setattr(netem, "stop_delayer", lambda t, n: order.append("stop") or 4242)
    deleted = []

    class Rule(FakeTarget):
        def run(self, node, argv, **kw):
            self.commands.append(list(argv))
            if argv[:2] == ["ip", "-o"]:
                return ADDR
            if argv[:1] == ["iptables"] and "-C" in argv:
                return ok() if not deleted else fail("no such rule")
            if argv[:1] == ["iptables"] and "-D" in argv:
                deleted.append(argv)
                order.append("rule")
                return ok()
            if argv[:1] == ["cat"]:
                return ok("")  # no legacy tables: iptables-legacy is not asked
            return ok("qdisc noqueue 0: root refcnt 2\n")

    target = Rule()
    said = control.netem(target, "db", None)
    assert said == "db: no added delay (removed: NFQUEUE rule, delayer pid 4242)"
    assert order == ["rule", "stop"]  # no packet is queued to a delayer that is gone
    assert not target.ran("iptables-legacy")
    assert not target.ran("tc", "qdisc", "del")


def test_clear_removes_real_netem(monkeypatch):
    monkeypatch.setattr(netem, "stop_delayer", lambda t, n: None)
    target = FakeTarget([(["ip"], ADDR), (["cat"], ok("")),
                         (["tc", "qdisc", "show"], ok("qdisc netem 8001: root refcnt 2 "
                                                      "limit 1000 delay 2ms\n")),
                         (["tc", "qdisc", "del"], ok())])
    assert control.netem(target, "db", None) == "db: no added delay (removed: tc netem)"


def test_clear_with_nothing_set_says_so(monkeypatch):
    monkeypatch.setattr(netem, "stop_delayer", lambda t, n: None)
    target = FakeTarget([(["ip"], ADDR), (["cat"], ok("mangle\n")),
                         (["tc", "qdisc", "show"], ok("qdisc noqueue 0: root\n"))])
    said = control.netem(target, "db", None)
    assert said == "db: no added delay (removed: nothing, none was set)"
    assert target.ran("iptables-legacy")  # legacy tables exist: a rule there is looked for


def test_a_stale_pid_file_is_dropped_and_nothing_is_signalled(tmp_path, monkeypatch):
    monkeypatch.setattr(netem.paths, "NODES", tmp_path)
    node = topology.load().node("db")
    (tmp_path / "db" / "run").mkdir(parents=True)
    pidfile = tmp_path / "db" / "run" / netem.PIDFILE
    pidfile.write_text(f"{os.getpid()}\n")  # a living PID, but not a delayer's
    assert netem.stop_delayer(FakeTarget(), node) is None
    assert not pidfile.exists()
    assert netem.stop_delayer(FakeTarget(), node) is None  # no pid file at all


def test_is_delayer_knows_its_own_command_line():
    assert not netem.is_delayer(os.getpid())
    assert not netem.is_delayer(2 ** 22 + 7)  # no such process


# --- the delayer's netlink messages -----------------------------------------------------

def nlmsg(kind: int, body: bytes, seq: int = 0) -> bytes:
    pad = b"\0" * (-len(body) % 4)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body + pad


def packet(packet_id: int, queue: int = netem.QUEUE) -> bytes:
    header = struct.pack("!IHB", packet_id, 0x0800, 1)  # packed: 7 bytes
    indev = 5  # NFQA_IFINDEX_INDEV: an attribute before the one that matters
    body = (bytes([2, 0]) + struct.pack("!H", queue)
            + netem.attr(indev, struct.pack("!I", 2)) + netem.attr(netem.NFQA_PACKET_HDR, header))
    return nlmsg(netem.PACKET_TYPE, body)


def test_the_bind_message_asks_for_metadata_only_and_an_ack():
    msg = netem.config(netem.QUEUE, netem.NFQNL_CFG_CMD_BIND, seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq) == (len(msg), 0x0302, 1 | 4, 7)
    assert struct.unpack_from("!H", msg, 18)[0] == netem.QUEUE  # res_id: big-endian
    attrs = {}
    at = 20
    while at < len(msg):
        size, kind = struct.unpack_from("=HH", msg, at)
        attrs[kind] = msg[at + 4:at + size]
        at += (size + 3) & ~3
    assert attrs[netem.NFQA_CFG_CMD] == bytes([1, 0]) + struct.pack("!H", 2)
    assert attrs[netem.NFQA_CFG_PARAMS] == struct.pack("!IB", 0, 1)  # copy range 0, meta
    assert attrs[netem.NFQA_CFG_QUEUE_MAXLEN] == struct.pack("!I", netem.QUEUE_MAXLEN)
    assert attrs[netem.NFQA_CFG_FLAGS] == attrs[netem.NFQA_CFG_MASK] == struct.pack("!I", 4)


def test_one_batch_verdict_accepts_up_to_an_id():
    msg = netem.verdict_upto(netem.QUEUE, 0xDEADBEEF)
    length, kind, flags, _, _ = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags) == (len(msg), 0x0303, 1)
    assert struct.unpack_from("=HH", msg, 20) == (12, netem.NFQA_VERDICT_HDR)
    assert struct.unpack_from("!II", msg, 24) == (1, 0xDEADBEEF)  # NF_ACCEPT, id


def test_parse_finds_packet_ids_and_acks_in_one_read():
    error = nlmsg(2, struct.pack("=i", -16) + b"\0" * 16, seq=3)
    ack = nlmsg(2, struct.pack("=i", 0) + b"\0" * 16, seq=4)
    ids, acks = netem.parse(packet(1) + packet(2) + error + ack + packet(70000))
    assert ids == [1, 2, 70000]
    assert acks == [(3, 16), (4, 0)]
    assert netem.parse(b"") == ([], [])
    assert netem.parse(b"\0" * 16) == ([], [])  # a zero length does not loop


# --- the delayer's timing ----------------------------------------------------------------

class FakeSocket:
    def __init__(self):
        self.sent: list[int] = []

    def send(self, msg: bytes) -> int:
        self.sent.append(struct.unpack_from("!II", msg, 24)[1])
        return len(msg)


def delayer(delay_ms: float) -> netem.Delayer:
    d = object.__new__(netem.Delayer)
    d.queue, d.delay = netem.QUEUE, delay_ms / 1000
    d.held, d.last_id, d.early = netem.deque(), None, 0.0
    d.max_early = min(0.00025, d.delay / 4)
    d.sock = FakeSocket()
    return d


def test_packets_wait_the_delay_and_leave_in_order_in_one_verdict():
    d = delayer(2)
    d.hold([10, 11], now=100.000)
    d.hold([12], now=100.001)
    d.release(100.0019)
    assert d.sock.sent == []
    d.release(100.0020)
    assert d.sock.sent == [11]          # 10 and 11 together: one verdict up to 11
    d.release(100.0029)
    assert d.sock.sent == [11]
    d.release(100.0031)
    assert d.sock.sent == [11, 12]
    assert not d.held and d.last_id == 12


def test_late_wakeups_are_learnt_and_bounded():
    d = delayer(2)
    for _ in range(100):                # the timer fires 100 us after the time aimed at,
        d.learn(0.0001 - d.early)       # which is d.early before the packet is due
    assert d.early == pytest.approx(0.0001, rel=0.01)
    for _ in range(100):
        d.learn(0.01 - d.early)         # a stall: never aim more than 0.25 ms early
    assert d.early == d.max_early == 0.00025
    for _ in range(200):
        d.learn(0.0 - d.early)          # on time: the correction fades away
    assert d.early < 0.000001
    assert delayer(0.4).max_early == pytest.approx(0.0001)  # nor a quarter of the delay


def test_the_delayer_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        netem.main(["serve", "--delay", "0"])
    assert "give milliseconds" in capsys.readouterr().err
