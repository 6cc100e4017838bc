#!/usr/bin/env python3
"""Issue 3's speed bar for `fab analyse`: on a lab capture of >= 300k packets, the analyser
reads >= 10x the packets/s of tshark (the app port decoded as HTTP), extracts the same
upstream order, and its memory stays flat.

Both tools run as separate processes on the same file, rounds alternating tshark / analyser
so that the machine's noise (two shared cores) hits both alike. Each round's figures are
wall time and CPU time (user + sys, from wait4). Packets/s are given by plain wall time
and with each tool's fixed startup subtracted: its time on a tiny capture made of the
first 100 packets of the same file. The analyser also writes its upstream order
(--upstream-list), which must equal tshark's line for line; and it runs on the first half
of the file, whose max RSS must be that of the whole file (ratio ~1: memory is flat).

The bar is judged on the medians; the ratio of the best rounds is printed too (the two
shared cores make single rounds vary by up to 2x, the analyser's more than tshark's).
No lab needed. Exit 1 if a bar is missed.
Run:  /opt/django-lab/venv/bin/python bench/analyse_vs_tshark.py [CAPTURE] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import fail

from lab import topology
from lab.analysis.excerpt import copy_first_packets, count_packets

REPO = Path(__file__).resolve().parent.parent
MIN_PACKETS = 300_000
TINY = 100  # packets in the capture that times each tool's startup
SPEED_BAR = 10.0
FLAT_BAR = 1.10  # max RSS on the whole file / on its first half


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + sys seconds
    max_rss_mb: float


def run(argv: list[str], stdout: Path | None = None) -> Run:
    """Run ``argv`` to completion; its figures from wait4. Output goes to ``stdout``."""
    with open(stdout or os.devnull, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # the analyser exits 1 for a failed verdict
        fail(f"{argv[0]} exited {process.returncode}: {' '.join(map(str, argv))}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def newest_big_capture() -> Path:
    captures = sorted((REPO / "captures").glob("*.pcap"), key=lambda p: p.stat().st_mtime,
                      reverse=True)
    for capture in captures:
        if count_packets(capture, stop_at=MIN_PACKETS) >= MIN_PACKETS:
            return capture
    raise SystemExit(f"bench: no capture of >= {MIN_PACKETS} packets in captures/: make one "
                     "with `fab loadtest --duration 45 --label big`")


def commands(capture: Path, upstream_list: Path) -> tuple[list[str], list[str]]:
    topo = topology.load()
    tshark = ["tshark", "-r", str(capture), "-d", f"tcp.port=={topo.ports.app},http",
              "-Y", f"http.request && ip.src=={topo.balancer.address}",
              "-T", "fields", "-e", "ip.dst"]
    analyser = [sys.executable, "-m", "lab.analysis", str(capture), "--json",
                "--upstream-list", str(upstream_list)]
    return tshark, analyser


def per_second(packets: int, seconds: float) -> float:
    return packets / seconds if seconds > 0 else float("inf")


def speeds(packets: int, runs: list[Run], startup: list[Run], pick=statistics.median
           ) -> dict[str, float]:
    """Packets/s by wall and CPU time, plain and with the startup subtracted (``pick``:
    the median of the rounds, or the best)."""
    wall = pick([r.wall for r in runs])
    cpu = pick([r.cpu for r in runs])
    wall0 = pick([r.wall for r in startup])
    cpu0 = pick([r.cpu for r in startup])
    return {"wall": per_second(packets, wall), "wall - startup": per_second(packets, wall - wall0),
            "cpu": per_second(packets, cpu), "cpu - startup": per_second(packets, cpu - cpu0)}


def compare_orders(tshark_out: Path, ours_out: Path) -> str | None:
    """None if both list the same backend addresses in the same order, else where not."""
    theirs = tshark_out.read_text().split()
    ours = [line.split("\t")[0] for line in ours_out.read_text().splitlines()]
    if theirs == ours:
        return None
    for position, (a, b) in enumerate(zip(theirs, ours, strict=False), 1):
        if a != b:
            return f"request {position}: tshark {a}, analyser {b}"
    return f"tshark lists {len(theirs)} upstream requests, the analyser {len(ours)}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("capture", nargs="?", type=Path,
                        help=f"a classic pcap of >= {MIN_PACKETS} packets (default: the "
                             "newest such in captures/)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("tshark") is None:
        fail("tshark is not installed (apt-get install tshark)")
    capture = (args.capture or newest_big_capture()).resolve()
    packets = count_packets(capture)
    with tempfile.TemporaryDirectory(prefix="analyse-bench-") as tmp:
        tmp = Path(tmp)
        tiny, half = tmp / "tiny.pcap", tmp / "half.pcap"
        copy_first_packets(capture, tiny, TINY)
        half_packets = copy_first_packets(capture, half, packets // 2)
        tshark, analyser = commands(capture, tmp / "ours.txt")
        tshark_tiny, analyser_tiny = commands(tiny, tmp / "ours-tiny.txt")
        print(f"capture {capture} ({packets} packets); {args.rounds} rounds, alternating")
        startup = {"tshark": [], "analyser": []}
        for _ in range(3):
            startup["tshark"].append(run(tshark_tiny))
            startup["analyser"].append(run(analyser_tiny))
        timed = {"tshark": [], "analyser": []}
        for round_ in range(1, args.rounds + 1):
            theirs = run(tshark, tmp / "tshark.txt")
            ours = run(analyser)
            timed["tshark"].append(theirs)
            timed["analyser"].append(ours)
            print(f"round {round_}: tshark {theirs.wall:6.2f} s wall {theirs.cpu:6.2f} s cpu   "
                  f"analyser {ours.wall:5.2f} s wall {ours.cpu:5.2f} s cpu   "
                  f"ratio {theirs.wall / ours.wall:5.2f} wall {theirs.cpu / ours.cpu:5.2f} cpu")
        halves = [run(analyser[:3] + [str(half), "--json"]) for _ in range(2)]
        order_difference = compare_orders(tmp / "tshark.txt", tmp / "ours.txt")
        upstream = len((tmp / "ours.txt").read_text().splitlines())
    for tool, runs in startup.items():
        print(f"startup ({TINY} packets): {tool:8} "
              f"{statistics.median(r.wall for r in runs):5.2f} s wall "
              f"{statistics.median(r.cpu for r in runs):5.2f} s cpu")
    theirs = speeds(packets, timed["tshark"], startup["tshark"])
    ours = speeds(packets, timed["analyser"], startup["analyser"])
    print(f"{'packets/s (medians)':22}" + "".join(f"{k:>16}" for k in theirs))
    print(f"{'tshark':22}" + "".join(f"{v:16,.0f}" for v in theirs.values()))
    print(f"{'analyser':22}" + "".join(f"{v:16,.0f}" for v in ours.values()))
    ratios = {k: ours[k] / theirs[k] for k in theirs}
    print(f"{'analyser / tshark':22}" + "".join(f"{v:15.2f}x" for v in ratios.values()))
    best_theirs = speeds(packets, timed["tshark"], startup["tshark"], min)
    best_ours = speeds(packets, timed["analyser"], startup["analyser"], min)
    print(f"{'  (best rounds)':22}" + "".join(f"{best_ours[k] / best_theirs[k]:15.2f}x"
                                              for k in theirs))
    whole_rss = max(r.max_rss_mb for r in timed["analyser"])
    half_rss = max(r.max_rss_mb for r in halves)
    flat = whole_rss / half_rss
    print("upstream order: " + (f"identical ({upstream} upstream requests)"
                                 if order_difference is None else
                                 f"DIFFERS at {order_difference}"))
    print(f"memory: analyser max RSS {half_rss:.1f} MB on the first half ({half_packets} "
          f"packets), {whole_rss:.1f} MB on the whole: ratio {flat:.2f} (bar <= {FLAT_BAR}); "
          f"tshark {max(r.max_rss_mb for r in timed['tshark']):.0f} MB")
    missed = []
    if ratios["wall - startup"] < SPEED_BAR:
        missed.append(f"packets/s ratio (wall - startup) {ratios['wall - startup']:.2f} "
                      f"< {SPEED_BAR}")
    if order_difference is not None:
        missed.append("the upstream orders differ")
    if flat > FLAT_BAR:
        missed.append(f"memory grows with the file (ratio {flat:.2f} > {FLAT_BAR})")
    print("bars: " + ("PASS" if not missed else "FAIL: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
