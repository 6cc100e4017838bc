"""fab loadtest in the real lab: traffic from the client node, a capture on the balancer,
and the analyser's verdict on it."""

from __future__ import annotations

import json

from lab.traffic import loadtest


def run(lab, **options):
    opts = loadtest.Options(label="pytest", **options)
    result, stem = loadtest.run(lab, opts)
    return result, stem


def test_a_sequential_loadtest_rotates_strictly_in_the_capture(lab):
    result, stem = run(lab, requests=150, concurrency=1, workload="trivial")
    analysis = result["analysis"]
    assert result["failures"] == []
    assert analysis["verdict"] == "pass"
    assert analysis["traffic"] == "sequential"
    assert analysis["requests"] == 150
    assert (analysis["round_robin"]["strict"], analysis["round_robin"]["breaks"]) == (True, 0)
    assert sorted(analysis["upstream_counts"].values()) == [50, 50, 50]
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["analysis"]["verdict"] == "pass"
    assert saved["capture"]["dropped_by_kernel"] == 0


def test_a_concurrent_loadtest_is_balanced_and_counted_everywhere(lab):
    result, stem = run(lab, duration=3, concurrency=16, workload="product")
    analysis = result["analysis"]
    assert result["failures"] == [], result["failures"]
    assert result["non_2xx"] == 0 and result["errors"] == {}
    counts = analysis["upstream_counts"]
    assert set(counts) == {app.name for app in lab.topo.apps}
    assert max(counts.values()) - min(counts.values()) <= 1
    # The capture, the app servers' own header and the generator agree on every request.
    assert analysis["requests"] == result["completed"]
    assert counts == result["served_by"]
    looked_up = sum(s["get_hits"] + s["get_misses"] for s in result["memcached"].values())
    assert looked_up >= result["completed"]  # every product page asked memcached


def test_a_fixed_rate_is_held_and_latency_counts_from_the_intended_time(lab):
    result, _ = run(lab, duration=3, concurrency=8, rate=200, workload="trivial",
                    capture=False)
    assert result["failures"] == []
    assert 540 <= result["completed"] <= 610  # 200/s for 3 s, give or take the edges
    assert result["latency_ms"]["p50"] < 1000
