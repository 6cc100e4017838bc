#!/usr/bin/env python3
"""Issue 3's bar: the lab's load generator is not the bottleneck. Against the same target in
the same run, its req/s >= 0.9 x wrk's (rounds alternate wrk / ours, median ratio).

Both run in the client node with 16 connections on /trivial (the same URL for both; wrk has
no Zipf workload); which goes first alternates round by round. Then twice on nginx's own
/nginx/ok, where the generator's own cost shows most (informational: no app server in
the path, so the generator, not the site, is what is measured there).
Each ratio is given twice: by req/s as measured, and by req/s per CPU-second the
hypervisor left this machine (common.with_steal): the verdict uses the second.
Run with the lab up:  /opt/django-lab/venv/bin/python bench/loadgen_vs_wrk.py
"""

from __future__ import annotations

import argparse
import json
import subprocess

from common import alternate, ratios, running_lab, url, with_steal, wrk

from lab import netns, paths

BAR = 0.9


def ours(lab, workload: str, seconds: int, connections: int) -> dict:
    topo = lab.topo
    argv = netns.in_node(topo.client, [
        str(paths.VENV / "bin" / "python"), "-m", "lab.traffic.generator", "--quiet",
        "--host", topo.balancer.address, "--port", str(topo.ports.http),
        "--workload", workload, "--duration", str(seconds),
        "--concurrency", str(connections)])

    def run() -> dict:
        result = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True,
                                           cwd=paths.ROOT).stdout)
        return {"rps": result["rps"],
                "non_2xx": result["non_2xx"] + sum(result["errors"].values())}

    return with_steal(run)


def compare(lab, path: str, workload: str, rounds: int, seconds: int) -> tuple[float, float]:
    def show(round_: int, result: dict) -> None:
        theirs, mine = result["wrk"], result["ours"]
        print(f"{path:10} round {round_}: wrk {theirs['rps']:8.0f} req/s (steal "
              f"{theirs['steal']:3.0%})   lab generator {mine['rps']:8.0f} req/s (steal "
              f"{mine['steal']:3.0%})   ratio {mine['rps'] / theirs['rps']:.3f}   non-2xx "
              f"{theirs['non_2xx']}/{mine['non_2xx']}")

    results = alternate(rounds, {"wrk": lambda: wrk(lab, url(lab, path), seconds),
                                 "ours": lambda: ours(lab, workload, seconds, 16)}, show)
    return ratios(results, "ours", "wrk")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    lab = running_lab()
    measured, given = compare(lab, "/trivial", "trivial", args.rounds, args.seconds)
    ceiling, _ = compare(lab, "/nginx/ok", "nginx", 2, args.seconds)
    verdict = "PASS" if given >= BAR else "FAIL"
    print(f"lab generator / wrk through the app servers, median of {args.rounds} rounds: "
          f"{measured:.3f} by req/s, {given:.3f} by req/s per CPU-second given (bar >= {BAR}, "
          f"on the latter) -> {verdict}")
    print(f"lab generator / wrk on nginx alone (the generator's own ceiling) = {ceiling:.3f}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
