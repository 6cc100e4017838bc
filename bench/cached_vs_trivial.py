#!/usr/bin/env python3
"""Issue 2's bar: a cached product page, warm, through the balancer, is nearly as fast as the
framework's floor (a trivial view through the same balancer): ratio >= 0.85, 0 non-2xx.

wrk from the client node, 16 connections; rounds alternate trivial / product.
Run with the lab up:  /opt/django-lab/venv/bin/python bench/cached_vs_trivial.py
"""

from __future__ import annotations

import argparse

from common import running_lab, url, wrk

from lab.demo import get

BAR = 0.85


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    lab = running_lab()
    product = "/products/1/"
    warm = get(lab, *[product] * len(lab.topo.apps))  # cached once, seen by every server
    assert warm[-1]["cache"] == "HIT", warm
    pairs, non_2xx = [], 0
    for round_ in range(1, args.rounds + 1):
        trivial = wrk(lab, url(lab, "/trivial"), args.seconds)
        cached = wrk(lab, url(lab, product), args.seconds)
        non_2xx += trivial["non_2xx"] + cached["non_2xx"] + trivial["socket_errors"] + \
            cached["socket_errors"]
        pairs.append((cached["rps"], trivial["rps"]))
        print(f"round {round_}: trivial {trivial['rps']:8.0f} req/s   cached product "
              f"{cached['rps']:8.0f} req/s   ratio {cached['rps'] / trivial['rps']:.3f}")
    ratio = sorted(a / b for a, b in pairs)[len(pairs) // 2]
    verdict = "PASS" if ratio >= BAR and non_2xx == 0 else "FAIL"
    print(f"cached product / trivial = {ratio:.3f} (median of {len(pairs)} rounds; bar "
          f">= {BAR}); non-2xx + socket errors: {non_2xx}  -> {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
