"""Runs kept and compared (lab/runs.py) and the loadtest report's words (lab/traffic/report.py),
on the committed sample results and copies of them."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from lab import runs
from lab.errors import LabError
from lab.traffic import report

SAMPLES = Path(__file__).resolve().parents[2] / "captures"
SAMPLE = json.loads((SAMPLES / "sample-concurrent.json").read_text())


def save_run(captures: Path, stamp: str, lab: str | None, **changes) -> Path:
    result = {**SAMPLE, "started": stamp, "lab": lab, **changes}
    stem = captures / runs.stem_name(stamp, result.get("label_given"),
                                     result["plan"]["workload"], result["cache_mode"])
    stem.with_suffix(".json").write_text(json.dumps(result))
    stem.with_suffix(".pcap").write_bytes(b"\0" * 1000)
    stem.with_suffix(".png").write_bytes(b"png")
    return stem


@pytest.fixture
def captures(tmp_path):
    for path in SAMPLES.glob("sample-*"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_run_files_say_time_label_or_workload_mode_and_policy():
    assert runs.stem_name("20261202T101500Z", "", "mixed", "local") == \
        "20261202T101500Z-mixed-local"
    assert runs.stem_name("20261202T101500Z", "warm", "product", "leases", "hash") == \
        "20261202T101500Z-warm-leases-hash"


def test_the_last_run_is_never_an_earlier_labs(captures):
    save_run(captures, "20261202T090000Z", lab="20261202T085900Z")
    assert runs.last_of_lab(captures, "20261202T100000Z") is None  # a fresh lab: none yet
    assert runs.last_of_lab(captures, None) is None  # no lab up
    mine = save_run(captures, "20261202T100500Z", lab="20261202T100000Z")
    assert runs.last_of_lab(captures, "20261202T100000Z").name == mine.name


def test_runs_table_marks_earlier_labs(captures):
    save_run(captures, "20261202T090000Z", lab="old")
    save_run(captures, "20261202T100500Z", lab="new")
    console = Console(width=200, record=True)
    console.print(runs.runs_table(runs.all_runs(captures), "new"))
    rows = {line.split("│")[2].strip(): line for line in console.export_text().splitlines()
            if line.count("│") > 5}
    assert "earlier" in rows["20261202T090000Z-product-leases"]
    assert "this" in rows["20261202T100500Z-product-leases"]
    assert "sample" in rows["sample-concurrent"]


def test_find_by_number_name_or_unique_part(captures):
    stem = save_run(captures, "20261202T100500Z", lab="new")
    assert runs.find(captures, stem.name + ".json").name == stem.name
    assert runs.find(captures, "T1005").name == stem.name
    assert runs.find(captures, "3").name == stem.name  # after the two samples
    with pytest.raises(LabError, match="names 2 runs"):
        runs.find(captures, "sample")
    with pytest.raises(LabError, match="no run named"):
        runs.find(captures, "nothing")


def test_prune_keeps_the_newest_and_never_the_samples(captures):
    stems = [save_run(captures, f"20261202T10{m:02d}00Z", lab="x") for m in range(5)]
    orphan = captures / "20261202T090000Z-product-leases.pcap"  # a run killed mid-way
    orphan.write_bytes(b"\0" * 100)
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    young = captures / "20261202T110000Z-product-leases.pcap"  # a run going on now
    young.write_bytes(b"\0")
    sizes = {p.name: p.stat().st_size for p in captures.iterdir()}
    removed, freed = runs.prune(captures, keep=2)
    assert freed == sum(sizes[p.name] for p in removed)
    assert sorted(p.name for p in removed) == sorted(
        [f"{s.name}{x}" for s in stems[:3] for x in (".pcap", ".json", ".png")] + [orphan.name])
    assert all(s.with_suffix(".pcap").exists() for s in stems[3:])
    assert young.exists()
    assert {p.name for p in SAMPLES.glob("sample-*")} <= {p.name for p in captures.iterdir()}
    removed, _ = runs.prune(captures, keep=0)
    assert not any(p.name.startswith("sample-") for p in removed)
    with pytest.raises(LabError, match="--keep -1"):
        runs.prune(captures, keep=-1)


def test_size_warning_past_the_topology_setting(captures):
    (captures / "big.pcap").write_bytes(b"\0" * (2 * 1024 * 1024))
    assert runs.size_warning(captures, 100) is None
    warning = runs.size_warning(captures, 1)
    assert "more than the 1 MB set in topology.yaml (results.warn_mb)" in warning
    assert "fab prune" in warning


def test_compare_shows_both_runs_and_one_png(captures):
    a = runs.find(captures, "sample-sequential")
    b = runs.find(captures, "sample-concurrent")
    console = Console(width=200, record=True)
    console.print(runs.compare_table(a, b))
    text = console.export_text()
    assert "req/s" in text and "228.20" in text and "445.90" in text and "1.95" in text
    runs.compare_png(a, b, captures / "both.png")
    assert (captures / "both.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the report's words ----------------------------------------------------------------


def test_figures_say_what_they_count_and_why_they_differ():
    console = Console(width=300, record=True)
    report.show(SAMPLE, console)
    text = " ".join(console.export_text().split())
    assert "page views served from cache (X-Cache: HIT) │ 87.0%" in text
    assert "memcached operations during the run" in text
    # 348 of 400 page views from cache; 348 of 400 gets hit: here they agree...
    assert "why two ratios" not in text
    differing = {**SAMPLE, "memcached": {"app1": {**SAMPLE["memcached"]["app1"],
                                                  "get_hits": 500, "get_misses": 16}}}
    line = report.why_ratios_differ(differing)
    assert "87.0% of 400 page views came from the cache" in line
    assert "96.9% of memcached's 516 get operations hit" in line
    pg = report.postgres_line(SAMPLE)
    assert "the site ran 106 SQL statements" in pg and "124 transactions in all" in pg
    assert "probes included" in pg


def test_rotation_line_says_what_the_traffic_expected():
    line = report.rotation_line(SAMPLE["analysis"])
    assert "concurrent traffic: balanced counts expected, max − min = " in line
    assert "strict order not expected" in line and "strict rotation False" not in line
    sequential = json.loads((SAMPLES / "sample-sequential.json").read_text())["analysis"]
    assert "sequential traffic: strict rotation expected, strict" in \
        report.rotation_line(sequential)


def test_mode_local_stale_reads_read_as_the_lesson():
    stale = {**SAMPLE, "cache_mode": "local", "consistency": {"stale_reads": 6372},
             "failures": ["6372 stale reads (...)"]}
    assert report.failure_line(stale).startswith("stale reads found, as expected in mode local")
    broken = {**stale, "failures": ["3 requests got no response", "6372 stale reads"]}
    assert report.failure_line(broken).startswith("the run failed: ")
    leases = {**stale, "cache_mode": "leases"}
    assert report.failure_line(leases).startswith("the run failed: ")


def test_png_title_carries_mode_verdict_stale_reads_and_red_on_failure(tmp_path):
    title, failed = report.title_of(SAMPLE)
    assert "cache mode leases" in title and title.endswith("passed") and not failed
    bad = {**SAMPLE, "consistency": {"stale_reads": 12}, "failures": ["12 stale reads"]}
    title, failed = report.title_of(bad)
    assert "12 stale reads" in title and "FAILED" in title and failed
    report.plot(bad, tmp_path / "bad.png")
    report.plot(SAMPLE, tmp_path / "good.png")
    from matplotlib.image import imread

    corner_bad = imread(tmp_path / "bad.png")[1, 1]
    corner_good = imread(tmp_path / "good.png")[1, 1]
    assert corner_bad[0] > 0.6 and corner_bad[1] < 0.4  # a red frame
    assert corner_good[:3].min() > 0.9  # white
