#!/usr/bin/env python3
"""Issue 3's bar: the lab's load generator is not the bottleneck. Against the same target in
the same run, its req/s >= 0.9 x wrk's (rounds alternate wrk / ours, median ratio).

Both run in the client node with 16 connections on /trivial (the same URL for both; wrk has
no Zipf workload); which goes first alternates round by round. Then twice on nginx's own
/nginx/ok, where the generator's own cost shows most (informational: no app server in
the path, so the generator, not the site, is what is measured there).
Run with the lab up:  /opt/django-lab/venv/bin/python bench/loadgen_vs_wrk.py
"""

from __future__ import annotations

import argparse
import json
import subprocess

from common import alternate, median_ratio, running_lab, url, wrk

from lab import netns, paths

BAR = 0.9


def ours(lab, workload: str, seconds: int, connections: int) -> dict:
    topo = lab.topo
    argv = netns.in_node(topo.client, [
        str(paths.VENV / "bin" / "python"), "-m", "lab.traffic.generator", "--quiet",
        "--host", topo.balancer.address, "--port", str(topo.ports.http),
        "--workload", workload, "--duration", str(seconds),
        "--concurrency", str(connections)])
    result = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True,
                                       cwd=paths.ROOT).stdout)
    return {"rps": result["rps"], "non_2xx": result["non_2xx"] + sum(result["errors"].values())}


def compare(lab, path: str, workload: str, rounds: int, seconds: int) -> float:
    def show(round_: int, result: dict) -> None:
        theirs, mine = result["wrk"], result["ours"]
        print(f"{path:10} round {round_}: wrk {theirs['rps']:8.0f} req/s   lab generator "
              f"{mine['rps']:8.0f} req/s   ratio {mine['rps'] / theirs['rps']:.3f}   "
              f"non-2xx {theirs['non_2xx']}/{mine['non_2xx']}")

    results = alternate(rounds, {"wrk": lambda: wrk(lab, url(lab, path), seconds),
                                 "ours": lambda: ours(lab, workload, seconds, 16)}, show)
    return median_ratio([(r["ours"]["rps"], r["wrk"]["rps"]) for r in results])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    lab = running_lab()
    ratio = compare(lab, "/trivial", "trivial", args.rounds, args.seconds)
    ceiling = compare(lab, "/nginx/ok", "nginx", 2, args.seconds)
    verdict = "PASS" if ratio >= BAR else "FAIL"
    print(f"lab generator / wrk through the app servers = {ratio:.3f} (median of "
          f"{args.rounds}; bar >= {BAR}) -> {verdict}")
    print(f"lab generator / wrk on nginx alone (the generator's own ceiling) = {ceiling:.3f}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
