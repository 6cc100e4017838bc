#!/usr/bin/env python3
"""Issue 5's bars, measured side by side in one run (rounds alternate the modes):

- warm cache: database queries per page view <= 0.01 (mode leases);
- with `fab netem db --delay 2`: throughput in mode leases >= 3 x mode off;
- leases throughput >= 0.95 x shared (same netem, same workload).

The lab's own load generator from the client node, product pages with Zipf popularity,
16 connections. Each mode switch flushes memcached, so every round warms up first.
Run with the lab up:  /opt/django-lab/venv/bin/python bench/cache_modes.py
"""

from __future__ import annotations

import argparse
import statistics

from common import running_lab

from lab import control
from lab.traffic import loadtest

BARS = {"queries_per_view": 0.01, "leases_over_off": 3.0, "leases_over_shared": 0.95}


def measure(lab, mode: str, seconds: float) -> dict:
    control.switch_cache(lab, mode, say=lambda *a, **k: None)
    topo = lab.topo
    pages = topo.site.products + topo.site.categories
    loadtest.run(lab, loadtest.Options(workload="sweep", requests=pages, processes=1,
                                       capture=False, quiet=True, label=f"warm-{mode}"))
    result, _ = loadtest.run(lab, loadtest.Options(workload="product", duration=seconds,
                                                   capture=False, quiet=True,
                                                   label=f"bench-{mode}"))
    if result["failures"]:
        raise SystemExit(f"bench: {mode} run failed: {result['failures']}")
    return {"rps": result["rps"],
            "queries_per_view": result["postgres"]["statements"] / result["completed"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--delay-ms", type=float, default=2)
    args = parser.parse_args()
    lab = running_lab()
    runs: dict[str, list[dict]] = {"off": [], "shared": [], "leases": []}
    try:
        control.netem(lab, "db", args.delay_ms)
        for round_ in range(1, args.rounds + 1):
            for mode in runs:
                runs[mode].append(measure(lab, mode, args.seconds))
            print(f"round {round_} (db link +{args.delay_ms:g} ms): " + "   ".join(
                f"{mode} {runs[mode][-1]['rps']:7.0f} req/s" for mode in runs))
    finally:
        control.netem(lab, "db", None)
        control.switch_cache(lab, "leases", say=lambda *a, **k: None)
    rps = {mode: statistics.median(r["rps"] for r in rs) for mode, rs in runs.items()}
    figures = {
        "queries_per_view": statistics.median(r["queries_per_view"] for r in runs["leases"]),
        "leases_over_off": rps["leases"] / rps["off"],
        "leases_over_shared": rps["leases"] / rps["shared"],
    }
    passed = (figures["queries_per_view"] <= BARS["queries_per_view"]
              and figures["leases_over_off"] >= BARS["leases_over_off"]
              and figures["leases_over_shared"] >= BARS["leases_over_shared"])
    print(f"warm leases: {figures['queries_per_view']:.4f} database queries per page view "
          f"(bar <= {BARS['queries_per_view']})")
    print(f"leases / off throughput = {figures['leases_over_off']:.2f} "
          f"(bar >= {BARS['leases_over_off']})")
    print(f"leases / shared throughput = {figures['leases_over_shared']:.3f} "
          f"(bar >= {BARS['leases_over_shared']})")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
