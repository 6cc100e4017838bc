#!/usr/bin/env python3
"""The thundering herd (issue 5): with product 1 uncached, 64 concurrent requests for it.
How many times does PostgreSQL run the product query? Modes shared and leases alternate
round by round; the ratio is shared's queries per herd over leases'.

Optionally give the database link a delay (--db-delay MS, via fab netem) so each miss
takes as long as on a real network: the herd in 'shared' grows with it.
Run with the lab up:  /opt/django-lab/venv/bin/python bench/herd.py
"""

from __future__ import annotations

import argparse
import statistics

from common import running_lab

from lab import control
from lab import stats as lab_stats
from lab.probing import probe
from lab.traffic import loadtest


def herd(lab) -> int:
    topo = lab.topo
    url = f"http://{topo.apps[0].address}:{topo.ports.app}/products/1/update"
    assert probe(lab, topo.client, "post", url, "stock=7")["ok"]  # product 1 now uncached
    before = lab_stats.product_queries(lab)
    result, _ = loadtest.run(lab, loadtest.Options(
        workload="herd", requests=64, concurrency=64, processes=1, capture=False,
        quiet=True, label="bench-herd"))
    if result["failures"]:
        raise SystemExit(f"bench: herd failed: {result['failures']}")
    return lab_stats.product_queries(lab) - before


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db-delay", type=float, default=0)
    args = parser.parse_args()
    lab = running_lab()
    counts: dict[str, list[int]] = {"shared": [], "leases": []}
    try:
        if args.db_delay:
            print(control.netem(lab, "db", args.db_delay))
        for mode in counts:
            control.switch_cache(lab, mode, say=lambda *a, **k: None)
            counts[mode] = [herd(lab) for _ in range(args.rounds)]
            print(f"{mode:7}: product queries per herd of 64: {counts[mode]}")
    finally:
        if args.db_delay:
            control.netem(lab, "db", None)
        control.switch_cache(lab, "leases", say=lambda *a, **k: None)
    shared, leases = (statistics.median(counts[m]) for m in ("shared", "leases"))
    verdict = "PASS" if max(counts["leases"]) == 1 else "FAIL"
    print(f"median queries per herd: shared {shared:g}, leases {leases:g} "
          f"(ratio {shared / leases:.1f}); leases asks once every time -> {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
