"""Shared by the bench scripts: the running lab, and wrk run inside its client node.

Benchmarks print ratios measured side by side in one run: rounds alternate between the two
things compared, so the machine's noise (two shared cores) hits both alike.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import health, netns, targets, topology  # noqa: E402
from lab.errors import LabError  # noqa: E402


def running_lab() -> targets.LocalTarget:
    target = targets.LocalTarget(topology.load())
    report = health.check(target)
    if not all(node.healthy for node in report):
        sys.exit("bench: the lab is not up and healthy: run 'fab up' first")
    return target


def url(target, path: str) -> str:
    topo = target.topo
    return f"http://{topo.balancer.address}:{topo.ports.http}{path}"


STEAL = 7  # the 8th number of /proc/stat's cpu line


def cpu_times() -> list[int]:
    """The machine's CPU time so far, by kind (/proc/stat: user ... idle iowait ... steal)."""
    return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def with_steal(run: Callable[[], dict]) -> dict:
    """run()'s result plus the share of CPU time the hypervisor gave to other guests meanwhile
    ("steal") and req/s per CPU-second this machine actually had ("rps_given").

    These cores are shared: steal swings from 0 to 20% minute to minute, and throughput of a
    CPU-bound lab swings with it. rps_given takes that noise out of a comparison.
    """
    before = cpu_times()
    result = run()
    steal = steal_since(before)
    return {**result, "steal": steal, "rps_given": result["rps"] / (1 - steal)}


def steal_since(before: list[int]) -> float:
    """The share of the machine's CPU time stolen since ``cpu_times()`` gave ``before``."""
    spent = [after - first for first, after in zip(before, cpu_times(), strict=True)]
    return spent[STEAL] / sum(spent) if sum(spent) else 0.0


def wrk(target, address: str, seconds: int = 5, connections: int = 16,
        threads: int = 2) -> dict:
    """wrk from the client node: requests/s and non-2xx count (and the steal meanwhile)."""
    argv = netns.in_node(target.topo.client, ["wrk", f"-t{threads}", f"-c{connections}",
                                              f"-d{seconds}s", address])
    return with_steal(lambda: parse_wrk(
        subprocess.run(argv, capture_output=True, text=True, check=True).stdout))


def parse_wrk(out: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    return {"rps": rps, "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    return statistics.median(a / b for a, b in pairs)


def ratios(results: list[dict[str, dict]], top: str, bottom: str) -> tuple[float, float]:
    """Median over the rounds of top/bottom: by req/s as measured, and by req/s per
    CPU-second given (steal taken out)."""
    return (median_ratio([(r[top]["rps"], r[bottom]["rps"]) for r in results]),
            median_ratio([(r[top]["rps_given"], r[bottom]["rps_given"]) for r in results]))


def steal_note(results: list[dict[str, dict]]) -> str:
    steals = [run["steal"] for result in results for run in result.values()]
    return f"CPU stolen by the hypervisor per run: {min(steals):.0%} to {max(steals):.0%}"


def alternate(rounds: int, contenders: dict[str, Callable[[], dict]],
              show: Callable[[int, dict[str, dict]], None]) -> list[dict[str, dict]]:
    """Every contender once per round, in an order that rotates round by round, so the
    machine's drift and whoever runs first after a pause hit all of them alike."""
    names = list(contenders)
    results = []
    for index in range(rounds):
        shift = index % len(names)
        result = {name: contenders[name]() for name in names[shift:] + names[:shift]}
        show(index + 1, result)
        results.append(result)
    return results


def fail(message: str) -> None:
    raise SystemExit(f"bench: {message}")


__all__ = ["LabError", "alternate", "cpu_times", "fail", "median_ratio", "ratios", "running_lab",
           "steal_note", "steal_since", "url", "with_steal", "wrk"]
