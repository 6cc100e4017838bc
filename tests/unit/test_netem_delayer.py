"""The userspace delayer against the real kernel, without the lab: a private network
namespace with only its loopback, one NFQUEUE rule for one UDP port there, and the delayer
(python -m lab.netem serve) in it. Needs root and iptables; skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from lab import netem, paths

PORT = 47999
NS = f"labtest-netem{os.getpid()}"

# Sends COUNT datagrams to itself on 127.0.0.1 at RATE per second, each carrying its sequence
# number and the time it was sent; prints what came back: sequence numbers, latencies (ms).
UDP = """
import json, socket, struct, sys, time
count, rate, wait = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", PORT))
rx.setblocking(False)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
got, start = [], time.monotonic()
def take():
    while True:
        try:
            data = rx.recv(64)
        except BlockingIOError:
            return
        seq, sent = struct.unpack("!Id", data)
        got.append((seq, (time.monotonic() - sent) * 1000))
for i in range(count):
    while time.monotonic() < start + i / rate:
        take()
    tx.sendto(struct.pack("!Id", i, time.monotonic()), ("127.0.0.1", PORT))
end = time.monotonic() + wait
while time.monotonic() < end and len(got) < count:
    take()
    time.sleep(0.0002)
print(json.dumps(got))
""".replace("PORT", str(PORT))


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def rule(op: str) -> list[str]:
    return ["ip", "netns", "exec", NS, "iptables", "-w", "5", "-t", "mangle", op, "PREROUTING",
            "-i", "lo", "-p", "udp", "--dport", str(PORT), "-j", "NFQUEUE", "--queue-num",
            str(netem.QUEUE), "--queue-bypass"]


@pytest.fixture(scope="module")
def namespace():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"):
        pytest.skip("needs root, ip and iptables (make install)")
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        added = sh(*rule("-A"), check=False)
        if added.returncode != 0:
            pytest.skip(f"this kernel cannot queue to userspace: {added.stderr.strip()}")
        yield NS
    finally:
        sh("ip", "netns", "del", NS, check=False)


@pytest.fixture
def start(namespace, tmp_path):
    """Starts the delayer in the namespace as fab netem does; stops it (by PID) after."""
    started = []

    def run(delay_ms: float) -> subprocess.Popen:
        pidfile = tmp_path / "delayer.pid"
        proc = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-m",
                                 "lab.netem", "serve", "--delay", str(delay_ms),
                                 "--pidfile", str(pidfile)], cwd=paths.ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        deadline = time.monotonic() + 10
        while netem.read_pid(pidfile) != proc.pid:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the delayer did not bind its queue"
            time.sleep(0.02)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def udp(count: int, rate: float, wait: float = 5.0) -> list[tuple[int, float]]:
    done = sh("ip", "netns", "exec", NS, sys.executable, "-c", UDP, str(count), str(rate),
              str(wait))
    return [tuple(x) for x in json.loads(done.stdout)]


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def test_every_packet_waits_the_delay_and_keeps_its_place(start):
    start(20)
    got = udp(400, 2000)
    assert [seq for seq, _ in got] == list(range(400))  # none lost, none reordered
    waits = [ms for _, ms in got]
    assert 19.8 <= median(waits) <= 21.5, median(waits)
    assert min(waits) >= 19.4, min(waits)  # it may aim early by its wake-up time, <= 0.25 ms


def test_stopping_the_delayer_lets_what_it_holds_go_at_once(start):
    proc = start(3000)
    sender = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", UDP, "50",
                               "1000", "5"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)                     # all 50 are held now, 2.5 s before they are due
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    got = [tuple(x) for x in json.loads(sender.communicate(timeout=10)[0])]
    assert [seq for seq, _ in got] == list(range(50))  # accepted on the way out, not dropped
    assert max(ms for _, ms in got) < 2000


def test_with_no_delayer_the_rule_lets_packets_by(namespace):
    got = udp(50, 1000)
    assert [seq for seq, _ in got] == list(range(50))
    assert median(ms for _, ms in got) < 5
