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
    share = page_views_from_cache(result)
    if share is not None:
        rows.append(("page views served from cache (X-Cache: HIT)", f"{share:.1%}"))
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


def page_views_from_cache(result: dict) -> float | None:
    """Of the page views that looked the cache up (X-Cache HIT or MISS), the share of HITs."""
    cache = result.get("cache", {})
    looked_up = cache.get("HIT", 0) + cache.get("MISS", 0)
    return cache.get("HIT", 0) / looked_up if looked_up else None


def memcached_gets(result: dict) -> tuple[int, int]:
    """memcached get operations during the run, over every server: (hits, all gets)."""
    servers = [s for s in result["memcached"].values() if "error" not in s]
    hits = sum(s["get_hits"] for s in servers)
    return hits, hits + sum(s["get_misses"] for s in servers)


def why_ratios_differ(result: dict) -> str | None:
    """One line when the page views' HIT share and memcached's hit ratio differ: they count
    different things (a page view can make several gets: a miss, a lease, a retry)."""
    share = page_views_from_cache(result)
    hits, gets = memcached_gets(result)
    if share is None or not gets:
        return None
    ratio = hits / gets
    cache = result["cache"]
    views = cache.get("HIT", 0) + cache.get("MISS", 0)
    if abs(ratio - share) < 0.005 and gets == views:
        return None
    return (f"why two ratios: {share:.1%} of {views:,} page views came from the cache "
            f"(X-Cache), while {ratio:.1%} of memcached's {gets:,} get operations hit "
            f"({gets / views:.2f} gets per page view: a miss also reads leases and retries, "
            "and the lab's own checks count)")


def show_backends(result: dict, console: Console) -> None:
    table = Table(title="memcached operations during the run (cache mode "
                        f"{result.get('cache_mode', '?')})")
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
    why = why_ratios_differ(result)
    if why:
        console.print(why, style="dim")
    pg = result["postgres"]
    if pg.get("ok"):
        console.print(postgres_line(result))


def postgres_line(result: dict) -> str:
    """What PostgreSQL did, each figure saying what it counts: the site's SQL statements
    (pg_stat_statements, every table, the lab's probes left out) and all transactions of
    the lab database (every session, the lab's own probes included)."""
    pg = result["postgres"]
    pages = max(1, result["completed"])
    return (f"PostgreSQL during the run: the site ran {pg['statements']:,} SQL statements "
            f"([bold]{pg['statements'] / pages:.4f} per page view[/], every query of any "
            f"page); the lab database saw {pg['transactions']:,} transactions in all (every "
            f"session, the lab's own probes included) and fetched {pg['rows_fetched']:,} rows")


def rotation_line(analysis: dict) -> str:
    """One line: what the capture proves about the balancer, and what this traffic was
    expected to show (strict order only for one request at a time)."""
    rr = analysis["round_robin"]
    colour = "green" if analysis["verdict"] == "pass" else "red"
    counts = ", ".join(f"{k}: {v}" for k, v in analysis["upstream_counts"].items())
    if analysis["traffic"] == "sequential":
        expected = ("sequential traffic: strict rotation expected, "
                    + ("strict" if rr["strict"] else f"{rr['breaks']} breaks"))
    else:
        expected = (f"concurrent traffic: balanced counts expected, max − min = {rr['spread']}"
                    f"; strict order not expected ({rr['breaks']} breaks)")
    return (f"capture: {analysis['requests']:,} upstream requests ({counts}); {expected} "
            f"-> [bold {colour}]verdict {analysis['verdict']}[/]")


def failure_line(result: dict) -> str:
    """Why the run fails, in one line; mode local's stale reads are its lesson, not a
    broken lab."""
    failures = result["failures"]
    stale = result.get("consistency", {}).get("stale_reads")
    if result.get("cache_mode") == "local" and stale and len(failures) == 1:
        return (f"stale reads found, as expected in mode local: {stale} reads returned an "
                "older version than a write acknowledged before they began (each app server "
                "caches on its own); fab cache leases fixes it")
    return "the run failed: " + "; ".join(failures)


def title_of(result: dict) -> tuple[str, bool]:
    """The PNG's title (mode, verdict, stale reads) and whether the run failed."""
    plan = result["plan"]
    failed = bool(result.get("failures"))
    verdict = "PARTIAL (interrupted)" if result.get("partial") else \
        ("FAILED" if failed else "passed")
    stale = result.get("consistency", {}).get("stale_reads")
    parts = [f"{result['label']}: {plan['workload']}", f"cache mode "
             f"{result.get('cache_mode', '?')}", f"c={plan['concurrency']}",
             f"{result['rps']:,.0f} req/s", f"{result['non_2xx']} non-2xx"]
    if stale is not None:
        parts.append(f"{stale} stale reads")
    return ", ".join(parts) + f" - {verdict}", failed


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
    right.set_title("responses per backend (X-Served-By)")
    for index, name in enumerate(names):
        right.annotate(f"{result['served_by'][name]:,}", (index, result["served_by"][name]),
                       ha="center", va="bottom")
    title, failed = title_of(result)
    figure.suptitle(title, color="#c0392b" if failed else "black",
                    fontweight="bold" if failed else "normal")
    if failed:
        figure.patch.set_edgecolor("#c0392b")
        figure.patch.set_linewidth(6)
    figure.tight_layout()
    figure.savefig(path, dpi=100, edgecolor=figure.get_edgecolor())
    plt.close(figure)
