"""The stale-read checker of `fab loadtest --workload mixed`.

Every write is acknowledged with the product's new version (versions only grow: the row is
locked while it is bumped). A read is stale if it *started* after some write of the same
product was acknowledged, yet returned an older version than that write's. Reads that
overlap a write may see either version: that is not staleness, only concurrency.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass, field


@dataclass
class Operation:
    started: float
    ended: float
    kind: str  # "read" or "write"
    product: int
    version: int


@dataclass
class Report:
    reads: int = 0
    writes: int = 0
    stale: int = 0
    examples: list[dict] = field(default_factory=list)
    unreadable: int = 0  # responses without a version (errors): counted, not judged

    def to_dict(self) -> dict:
        return {"reads": self.reads, "writes": self.writes, "stale_reads": self.stale,
                "examples": self.examples, "unreadable": self.unreadable}


def operations(records: list) -> tuple[list[Operation], int]:
    """Turn the generator's records (sent, ended, method, product, status, version header,
    POST body) into operations; also the count of responses that carried no version."""
    ops, unreadable = [], 0
    for sent, ended, method, product, status, version, body in records:
        if status != 200:
            unreadable += 1
            continue
        if method == "POST":
            try:
                version = json.loads(body)["version"]
            except (ValueError, KeyError, TypeError):
                unreadable += 1
                continue
            ops.append(Operation(sent, ended, "write", product, int(version)))
        elif version is not None:
            ops.append(Operation(sent, ended, "read", product, int(version)))
        else:
            unreadable += 1
    return ops, unreadable


def check(ops: list[Operation], max_examples: int = 5) -> Report:
    report = Report()
    acked: dict[int, tuple[list[float], list[int]]] = {}
    # Per product: acknowledgement times, and the highest version acknowledged by then.
    for op in sorted((o for o in ops if o.kind == "write"), key=lambda o: o.ended):
        times, best = acked.setdefault(op.product, ([], []))
        times.append(op.ended)
        best.append(max(op.version, best[-1] if best else 0))
        report.writes += 1
    for op in (o for o in ops if o.kind == "read"):
        report.reads += 1
        times, best = acked.get(op.product, ([], []))
        known = bisect_left(times, op.started)  # writes acknowledged before the read began
        if known and op.version < best[known - 1]:
            report.stale += 1
            if len(report.examples) < max_examples:
                report.examples.append({
                    "product": op.product, "read_version": op.version,
                    "acknowledged_version": best[known - 1],
                    "acknowledged_before_read_ms": round((op.started - times[known - 1])
                                                         * 1000, 3)})
    return report


def check_records(records: list) -> Report:
    ops, unreadable = operations(records)
    report = check(ops)
    report.unreadable = unreadable
    return report
