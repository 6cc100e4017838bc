"""A student's first hour (issue 17), against the real lab: runs kept per lab, and the
tasks' own words."""

from __future__ import annotations

import json
import subprocess

from lab import lifecycle, paths, runs
from lab.traffic import loadtest

FAB = str(paths.VENV / "bin" / "fab")


def fab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([FAB, *args], cwd=paths.ROOT, capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                "COLUMNS": "200", "LANG": "C.UTF-8"})


def test_runs_are_named_kept_per_lab_and_never_shown_as_a_later_labs(lab, lab_manager):
    result, stem = loadtest.run(lab, loadtest.Options(
        label="first-hour", requests=60, concurrency=4, capture=False, quiet=True))
    assert stem.name == f"{result['started']}-first-hour-leases"
    assert json.loads(stem.with_suffix(".json").read_text())["lab"] == \
        runs.lab_identity(lab)
    shown = fab("stats")
    assert shown.returncode == 0, shown.stderr
    assert "the last loadtest: first-hour" in shown.stdout
    listed = fab("runs").stdout
    row = next(line for line in listed.splitlines() if stem.name in line)
    assert "this" in row

    lifecycle.up(lab.topo, cache_mode="leases", say=lambda *a, **k: None, test_hooks=True)
    shown = fab("stats")
    assert shown.returncode == 0, shown.stderr
    assert "the last loadtest" not in shown.stdout
    assert "no loadtest on this lab yet" in shown.stdout
    row = next(line for line in fab("runs").stdout.splitlines() if stem.name in line)
    assert "earlier" in row
    for path in runs.find(paths.CAPTURES, stem.name).files():
        path.unlink()
