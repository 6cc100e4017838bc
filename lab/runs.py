"""The load tests' results, kept and compared: fab runs, fab compare, fab prune.

Each run leaves <time>-<label or workload>-<mode>[-<policy>].{pcap,json,png} in captures/.
The JSON names the lab it ran on (``lab``: when that lab's secrets were made, i.e. when its
``fab up`` ran), so a run of an earlier lab is never shown as the current lab's.
The samples (``sample-*``) are the class's reference captures: prune never removes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab.errors import LabError

SUFFIXES = (".pcap", ".json", ".png")
SAMPLE_PREFIX = "sample-"
DEFAULT_KEEP = 10
ORPHAN_AGE_S = 600  # a capture without a result younger than this may be a run going on


def stem_name(stamp: str, label: str | None, workload: str, mode: str,
              policy: str | None = None) -> str:
    """<time>-<label or workload>-<mode>[-<policy>]: a directory listing tells runs apart."""
    parts = [stamp, label or workload, mode]
    if policy:
        parts.append(policy)
    return "-".join(parts)


def lab_identity(target) -> str | None:
    """When the current lab was made (its secrets file's time), or None if there is none.

    A new ``fab up`` writes new secrets, so two labs never share this."""
    try:
        made = target.secrets.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(made, UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Run:
    path: Path  # the .json
    result: dict

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def lab(self) -> str | None:
        return self.result.get("lab")

    @property
    def stale_reads(self) -> int | None:
        return self.result.get("consistency", {}).get("stale_reads")

    @property
    def verdict(self) -> str:
        if self.result.get("partial"):
            return "partial"
        return "fail" if self.result.get("failures") else "pass"

    @property
    def p99(self) -> float | None:
        return self.result.get("latency_ms", {}).get("p99")

    def files(self) -> list[Path]:
        return [p for p in (self.path.with_suffix(s) for s in SUFFIXES) if p.exists()]


def all_runs(captures: Path) -> list[Run]:
    """Every saved load test result, oldest first (the samples included)."""
    runs = []
    for path in sorted(captures.glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and "plan" in result and "rps" in result:
            runs.append(Run(path, result))
    runs.sort(key=lambda run: (run.result.get("started", ""), run.name))
    return runs


def last_of_lab(captures: Path, lab: str | None) -> Run | None:
    """The newest run made on this lab; never one of an earlier lab."""
    if lab is None:
        return None
    mine = [run for run in all_runs(captures) if run.lab == lab]
    return mine[-1] if mine else None


def find(captures: Path, wanted: str) -> Run:
    """A run by its name (with or without .json), a unique part of it, or its number in
    ``fab runs``."""
    runs = all_runs(captures)
    if wanted.isdigit() and 1 <= int(wanted) <= len(runs):
        return runs[int(wanted) - 1]
    name = Path(wanted).name.removesuffix(".json")
    exact = [run for run in runs if run.name == name]
    if exact:
        return exact[0]
    matches = [run for run in runs if name in run.name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LabError(f"no run named {wanted!r} in {captures.name}/: see fab runs")
    raise LabError(f"{wanted!r} names {len(matches)} runs ({matches[0].name}, "
                   f"{matches[1].name}, ...): give more of the name, or its number in fab runs")


def prune(captures: Path, keep: int = DEFAULT_KEEP) -> tuple[list[Path], int]:
    """Remove the files of all runs but the newest ``keep`` (never the samples), and any
    capture left without its result; returns what was removed and the bytes freed."""
    if keep < 0:
        raise LabError(f"--keep {keep}: must be 0 or more runs")
    runs = [run for run in all_runs(captures) if not run.name.startswith(SAMPLE_PREFIX)]
    cut = max(len(runs) - keep, 0)
    doomed = [path for run in runs[:cut] for path in run.files()]
    kept = {run.name for run in runs[cut:]}
    recent = time.time() - ORPHAN_AGE_S
    for path in sorted(captures.glob("*")):
        orphan = (path.suffix in (".pcap", ".png") and path.stem not in kept
                  and not path.name.startswith(SAMPLE_PREFIX)
                  and not path.with_suffix(".json").exists())
        if orphan and path not in doomed and path.stat().st_mtime < recent:
            doomed.append(path)  # e.g. the capture of a run killed before its result
    freed = 0
    for path in doomed:
        freed += path.stat().st_size
        path.unlink()
    return doomed, freed


def size_of(captures: Path) -> int:
    return sum(p.stat().st_size for p in captures.glob("*") if p.is_file())


def size_warning(captures: Path, limit_mb: int) -> str | None:
    """One line when captures/ has grown past the topology's results.warn_mb."""
    size = size_of(captures)
    if size <= limit_mb * 1024 * 1024:
        return None
    return (f"{captures.name}/ holds {size / 1024 / 1024:,.0f} MB, more than the "
            f"{limit_mb} MB set in topology.yaml (results.warn_mb): "
            "fab prune --keep N removes the older runs (never the samples)")


# -- what people see --------------------------------------------------------------------


def runs_table(runs: list[Run], lab: str | None):
    from rich.table import Table

    table = Table(title="load test runs, oldest first (the name starts with its UTC time)")
    policies = any(run.result.get("policy") for run in runs)
    columns = ("#", "run", "workload", "mode", *(("policy",) if policies else ()), "req/s",
               "p99 ms", "verdict", "stale", "lab")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column != "run",
                         min_width=18 if column == "run" else None,
                         justify="right" if column in ("#", "req/s", "p99 ms", "stale")
                         else "left")
    for number, run in enumerate(runs, 1):
        r = run.result
        if run.name.startswith(SAMPLE_PREFIX):
            which = "sample"
        elif lab is not None and run.lab == lab:
            which = "[green]this[/]"
        else:
            which = "[dim]earlier[/]"
        verdict = {"pass": "[green]pass[/]", "fail": "[red]fail[/]",
                   "partial": "[yellow]partial[/]"}[run.verdict]
        stale = run.stale_reads
        policy = (r.get("policy") or "-",) if policies else ()
        table.add_row(str(number), run.name, r["plan"]["workload"],
                      r.get("cache_mode", "?"), *policy, f"{r['rps']:,.0f}",
                      "-" if run.p99 is None else f"{run.p99:,.1f}", verdict,
                      "-" if stale is None else str(stale), which)
    return table


COMPARED = (
    ("workload", lambda r: r["plan"]["workload"]),
    ("cache mode", lambda r: r.get("cache_mode", "?")),
    ("connections", lambda r: r["plan"]["concurrency"]),
    ("requests", lambda r: r["requests"]),
    ("req/s", lambda r: r["rps"]),
    ("latency p50 ms", lambda r: r["latency_ms"].get("p50")),
    ("latency p99 ms", lambda r: r["latency_ms"].get("p99")),
    ("latency max ms", lambda r: r["latency_ms"].get("max")),
    ("non-2xx responses", lambda r: r["non_2xx"]),
    ("page views served from cache", lambda r: cache_share(r)),
    ("site's SQL statements per page view", lambda r: statements_per_view(r)),
    ("stale reads", lambda r: r.get("consistency", {}).get("stale_reads")),
    ("verdict", lambda r: "partial" if r.get("partial") else
     ("fail" if r.get("failures") else "pass")),
)


def cache_share(result: dict) -> float | None:
    cache = result.get("cache", {})
    looked_up = cache.get("HIT", 0) + cache.get("MISS", 0)
    return cache.get("HIT", 0) / looked_up if looked_up else None


def statements_per_view(result: dict) -> float | None:
    pg = result.get("postgres", {})
    if not pg.get("ok"):
        return None
    return pg["statements"] / max(1, result["completed"])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 and value != int(value) else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def compare_table(a: Run, b: Run):
    from rich.table import Table

    table = Table(title=f"{a.name}  vs  {b.name}")
    table.add_column("measure")
    table.add_column(f"A {a.name}", justify="right")
    table.add_column(f"B {b.name}", justify="right")
    table.add_column("B ÷ A", justify="right")
    for label, get in COMPARED:
        left, right = _get(get, a.result), _get(get, b.result)
        ratio = "-"
        if isinstance(left, int | float) and isinstance(right, int | float) \
                and not isinstance(left, bool) and left:
            ratio = f"{right / left:.2f}"
        if label == "page views served from cache":
            cells = [_percent(left), _percent(right)]
        elif label == "site's SQL statements per page view":
            cells = ["-" if left is None else f"{left:.4f}", "-" if right is None
                     else f"{right:.4f}"]
        else:
            cells = [_cell(left), _cell(right)]
        table.add_row(label, *cells, ratio)
    return table


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _get(get, result):
    try:
        return get(result)
    except (KeyError, TypeError):
        return None


def compare_png(a: Run, b: Run, path: Path) -> None:
    """One figure: both runs' latency by percentile, and their requests per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from hdrh.histogram import HdrHistogram

    percentiles = [50, 75, 90, 95, 99, 99.9, 99.99, 100]
    positions = [1 / (1 - p / 100) if p < 100 else 1e5 for p in percentiles]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    backends = list(dict.fromkeys([*a.result["served_by"], *b.result["served_by"]]))
    width = 0.4
    for index, (tag, run, colour) in enumerate((("A", a, "tab:blue"), ("B", b, "tab:orange"))):
        histogram = HdrHistogram.decode(run.result["histogram"].encode())
        values = [histogram.get_value_at_percentile(p) / 1000 for p in percentiles]
        left.plot(positions, values, marker="o", color=colour, label=f"{tag} {run.name}")
        right.bar([i + (index - 0.5) * width for i in range(len(backends))],
                  [run.result["served_by"].get(name, 0) for name in backends], width,
                  color=colour, label=f"{tag} {run.result['rps']:,.0f} req/s")
    left.set_xscale("log")
    left.set_xticks(positions, [f"{p:g}%" for p in percentiles], rotation=45, fontsize=8)
    left.set_ylabel("latency (ms)")
    left.set_title("latency by percentile")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7)
    right.set_xticks(range(len(backends)), backends)
    right.set_title("responses per backend (X-Served-By)")
    right.legend(fontsize=8)
    figure.suptitle(f"A {a.name}  vs  B {b.name}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
