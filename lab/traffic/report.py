"""A load test's result for people: a table in the terminal and a PNG beside the capture."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from lab.stats import hit_ratio


def show(result: dict, console: Console) -> None:
    plan = result["plan"]
    table = Table(title=f"loadtest {result['label']}: {plan['workload']}, "
                        f"{plan['concurrency']} connections"
                        + (f", {plan['rate']:g} req/s offered" if plan["rate"] else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("requests", f"{result['requests']:,} in {result['seconds']:.1f} s"),
        ("throughput", f"{result['rps']:,.0f} req/s"),
        ("status", ", ".join(f"{k}: {v:,}" for k, v in result["status"].items()) or "-"),
        ("no response", ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "0"),
    ]
    rows += [(f"latency {k}", f"{v:,.2f} ms") for k, v in result["latency_ms"].items()]
    rows.append(("per backend (X-Served-By)",
                 ", ".join(f"{k}: {v:,}" for k, v in result["served_by"].items())))
    cache = result["cache"]
    looked_up = cache.get("HIT", 0) + cache.get("MISS", 0)
    if looked_up:
        rows.append(("cache HIT ratio (X-Cache)", f"{cache.get('HIT', 0) / looked_up:.1%}"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    show_backends(result, console)
    if "consistency" in result:
        show_consistency(result["consistency"], console)


def show_consistency(report: dict, console: Console) -> None:
    colour = "red" if report["stale_reads"] else "green"
    console.print(f"consistency: {report['reads']:,} reads, {report['writes']:,} acknowledged "
                  f"writes -> [bold {colour}]{report['stale_reads']} stale reads[/]")
    for example in report["examples"]:
        console.print(f"  product {example['product']}: read version "
                      f"{example['read_version']}, but version "
                      f"{example['acknowledged_version']} was acknowledged "
                      f"{example['acknowledged_before_read_ms']} ms before the read began")


def show_backends(result: dict, console: Console) -> None:
    table = Table(title=f"during the run (cache mode {result.get('cache_mode', '?')})")
    for column in ("memcached", "get_hits", "get_misses", "hit ratio", "curr_items",
                   "evictions"):
        table.add_column(column, justify="right")
    for name, stats in result["memcached"].items():
        if "error" in stats:
            table.add_row(name, f"[red]{stats['error']}[/]")
            continue
        ratio = hit_ratio(stats)
        table.add_row(name, f"{stats['get_hits']:,}", f"{stats['get_misses']:,}",
                      "-" if ratio is None else f"{ratio:.1%}", f"{stats['curr_items']:,}",
                      str(stats["evictions"]))
    console.print(table)
    pg = result["postgres"]
    if pg.get("ok"):
        pages = max(1, result["completed"])
        console.print(f"PostgreSQL during the run: {pg['statements']:,} statements, "
                      f"[bold]{pg['statements'] / pages:.4f} database queries per page view"
                      "[/], "
                      f"{pg['transactions']:,} transactions, {pg['rows_fetched']:,} rows fetched")


def plot(result: dict, path: Path) -> None:
    """Latency by percentile (log scale, HDR style) and requests per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from hdrh.histogram import HdrHistogram

    histogram = HdrHistogram.decode(result["histogram"].encode())
    percentiles = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100]
    values = [histogram.get_value_at_percentile(p) / 1000 for p in percentiles]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    positions = [1 / (1 - p / 100) if p < 100 else 1e5 for p in percentiles]
    left.plot(positions, values, marker="o")
    left.set_xscale("log")
    left.set_xticks(positions, [f"{p:g}%" for p in percentiles], rotation=45, fontsize=8)
    left.set_ylabel("latency (ms)")
    left.set_title("latency by percentile")
    left.grid(True, alpha=0.3)
    names = list(result["served_by"])
    right.bar(names, [result["served_by"][n] for n in names], color="tab:green")
    right.set_title("requests per backend (X-Served-By)")
    for index, name in enumerate(names):
        right.annotate(f"{result['served_by'][name]:,}", (index, result["served_by"][name]),
                       ha="center", va="bottom")
    plan = result["plan"]
    figure.suptitle(f"{result['label']}: {plan['workload']}, c={plan['concurrency']}, "
                    f"{result['rps']:,.0f} req/s, {result['non_2xx']} non-2xx")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
