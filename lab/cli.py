"""What the fab tasks do, kept out of the fabfile: each function takes plain arguments,
prints for a person (rich) or for a program (--json), and raises LabError for anything
the user can fix."""

from __future__ import annotations

import functools
import json
import os
import sys
import time

from invoke.exceptions import Exit
from rich.console import Console
from rich.table import Table

from lab import health, paths, targets, topology
from lab.errors import LabError

console = Console(highlight=False)


def one_line_errors(fn):
    """A LabError becomes one line on stderr and exit status 1: no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LabError as exc:
            raise Exit(f"error: {exc}", code=1) from None

    return wrapper


def load_topology() -> topology.Topology:
    return topology.load(os.environ.get("LAB_TOPOLOGY", topology.DEFAULT_PATH))


def up(cache: str, target: str | None) -> None:
    chosen = targets.get(load_topology(), target)
    if lab_is_up(chosen):
        console.print("[yellow]a lab is running: fab up rebuilds it from nothing; its data "
                      "and its results (stats, the runs of that lab) go[/]")
    start = time.monotonic()
    try:
        chosen.up(cache, say=console.print)
    except KeyboardInterrupt:
        health.UP_INTERRUPTED.parent.mkdir(parents=True, exist_ok=True)
        health.UP_INTERRUPTED.write_text("fab up was interrupted (Ctrl-C)\n")
        raise Exit("fab up interrupted: the lab is half-built; run fab up again (or fab "
                   "down)", code=130) from None
    health.UP_INTERRUPTED.unlink(missing_ok=True)
    seconds = time.monotonic() - start
    report = health.check(chosen)
    show_status(report)
    if not all(n.healthy for n in report):
        raise LabError("the lab came up unhealthy: see the table above and the logs under "
                       f"{paths.NODES}/<node>/log")
    console.print(f"[bold green]lab up[/] in {seconds:.1f} s (cache mode {cache})")


def running(target: str | None):
    """The target, once it is known that its lab is up: else one line, exit 1."""
    chosen = targets.get(load_topology(), target)
    health.ensure_up(chosen)
    return chosen


def lab_is_up(target) -> bool:
    try:
        health.ensure_up(target)
    except LabError:
        return False
    return True


def down(target: str | None) -> None:
    targets.get(load_topology(), target).down(say=console.print)
    health.UP_INTERRUPTED.unlink(missing_ok=True)


def status(as_json: bool, target: str | None) -> None:
    report = health.check(targets.get(load_topology(), target))
    if as_json:
        print(json.dumps(health.as_json(report), indent=1))
    else:
        show_status(report)
    if not all(n.serving for n in report):
        sys.exit(1)


STATE_STYLE = {"healthy": "[green]healthy[/]", "degraded": "[yellow]degraded[/]",
               "unhealthy": "[red]unhealthy[/]"}


def show_status(report: list[health.NodeHealth]) -> None:
    table = Table(title="lab nodes")
    for column in ("node", "role", "address", "services", "state"):
        table.add_column(column)
    for node in report:
        services = ", ".join(f"{k} {'ok' if v == 'ok' else '[red]' + v + '[/]'}"
                             for k, v in node.services.items())
        table.add_row(node.name, node.role, node.address, services, STATE_STYLE[node.state])
    console.print(table)
    degraded = [n.name for n in report if n.state == "degraded"]
    if degraded:
        console.print(f"degraded: {', '.join(degraded)} serve every page, from PostgreSQL, "
                      "without their memcached (slower, not broken): fab start NODE memcached")


def shell(node_name: str) -> None:
    from lab import shellrc

    target = targets.LocalTarget(load_topology())
    node = target.topo.node(node_name)
    health.ensure_up(target)
    rcfile = shellrc.write(node)
    argv = target.argv(node, ["/bin/bash", "--rcfile", str(rcfile), "-i"])
    os.execvpe(argv[0], argv, dict(os.environ, LAB_NODE=node.name))


def stats(target: str | None) -> None:
    from lab import stats as lab_stats

    chosen = running(target)
    snap = lab_stats.snapshot(chosen)
    console.print(f"cache mode: [bold]{chosen.cache_mode()}[/]")
    show_stats(snap, title="memcached (since each server started)")
    from lab import runs

    run = runs.last_of_lab(paths.CAPTURES, runs.lab_identity(chosen))
    if run is None:
        console.print("no loadtest on this lab yet (fab runs lists earlier labs' runs)")
    else:
        from lab.traffic import report

        last = run.result
        console.rule(f"the last loadtest: {last['label']} ({last['started']}, "
                     f"{last['plan']['workload']}, cache mode {last.get('cache_mode', '?')})")
        report.show_backends(last, console)


def show_stats(snap, title: str) -> None:
    from lab.stats import MEMCACHED_FIELDS, hit_ratio

    table = Table(title=title)
    table.add_column("server")
    for field in (*MEMCACHED_FIELDS[:4], "hit ratio"):
        table.add_column(field, justify="right")
    for name, stats in snap.memcached.items():
        if "error" in stats:
            table.add_row(name, f"[red]{stats['error']}[/]")
            continue
        ratio = hit_ratio(stats)
        table.add_row(name, *(str(stats[f]) for f in MEMCACHED_FIELDS[:4]),
                      "-" if ratio is None else f"{ratio:.1%}")
    console.print(table)
    pg = snap.postgres
    if not pg.get("ok"):
        console.print(f"[red]PostgreSQL: {pg.get('error')}[/]")
        return
    table = Table(title="PostgreSQL (database lab)")
    for column in ("transactions", "rows returned", "rows fetched", "statements"):
        table.add_column(column, justify="right")
    table.add_row(str(pg["transactions"]), str(pg["rows_returned"]), str(pg["rows_fetched"]),
                  str(pg["statements"]))
    console.print(table)


def demo(target: str | None) -> None:
    from lab import demo as lab_demo

    chosen = running(target)
    show_status(health.check(chosen))
    lab_demo.run(chosen, console)


def loadtest(opts, target: str | None) -> None:
    from lab.traffic import loadtest as lt
    from lab.traffic import report

    opts.check()  # bad options first: one line, even with the lab down
    chosen = running(target)
    result, stem = lt.run(chosen, opts)
    report.show(result, console)
    report.plot(result, stem.with_suffix(".png"))
    if "analysis" in result:
        console.print(report.rotation_line(result["analysis"]))
    shown = [stem.with_suffix(s).name for s in (".pcap", ".json", ".png")
             if stem.with_suffix(s).exists()]
    console.print(f"saved in {paths.CAPTURES.name}/: {', '.join(shown)}")
    warn_about_size()
    if result["failures"]:
        raise LabError(report.failure_line(result))
    console.print("[bold green]loadtest passed[/]")


def warn_about_size() -> None:
    from lab import runs

    warning = runs.size_warning(paths.CAPTURES, load_topology().results_warn_mb)
    if warning:
        console.print(f"[yellow]warning: {warning}[/]")


def runs(target: str | None) -> None:
    from lab import runs as lab_runs

    lab = lab_runs.lab_identity(targets.get(load_topology(), target))
    found = lab_runs.all_runs(paths.CAPTURES)
    if not found:
        console.print(f"no runs in {paths.CAPTURES.name}/ yet: fab loadtest makes one")
        return
    console.print(lab_runs.runs_table(found, lab))
    if lab is None:
        console.print("no lab is up: every run above is of an earlier lab")


def compare(first: str, second: str) -> None:
    from lab import runs as lab_runs

    a, b = lab_runs.find(paths.CAPTURES, first), lab_runs.find(paths.CAPTURES, second)
    console.print(lab_runs.compare_table(a, b))
    png = paths.CAPTURES / f"compare-{a.name}-vs-{b.name}.png"
    lab_runs.compare_png(a, b, png)
    console.print(f"saved in {paths.CAPTURES.name}/: {png.name}")


def prune(keep: int) -> None:
    from lab import runs as lab_runs

    removed, freed = lab_runs.prune(paths.CAPTURES, keep)
    console.print(f"removed {len(removed)} files ({freed / 1024 / 1024:,.1f} MB); kept the "
                  f"newest {keep} runs and the samples; {paths.CAPTURES.name}/ now holds "
                  f"{lab_runs.size_of(paths.CAPTURES) / 1024 / 1024:,.1f} MB")


def analyse(pcap: str, as_json: bool, flow: int, png: str | None, traffic: str | None,
            width: int | None = None) -> int:
    from lab.analysis import cli as analysis_cli

    if traffic not in (None, "sequential", "concurrent"):
        raise LabError(f"--traffic {traffic!r}: choose sequential or concurrent")
    argv = [pcap, "--topology", str(os.environ.get("LAB_TOPOLOGY", topology.DEFAULT_PATH))]
    argv += ["--json"] if as_json else []
    argv += ["--flow", str(flow)] if flow else []
    argv += ["--png", png] if png else []
    argv += [f"--{traffic}"] if traffic else []
    argv += ["--width", str(width)] if width else []
    return analysis_cli.main(argv)


def number(value, kind, flag: str):
    """A task option as a number, or one clear line saying it is not one."""
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise LabError(f"{flag} {value!r}: not a number") from None


def cache(mode: str, target: str | None) -> None:
    from lab import control

    control.check_mode(mode)  # a bad mode is refused before anything else
    control.switch_cache(running(target), mode, say=console.print)


def service(action: str, node: str, name: str, target: str | None) -> None:
    from lab import control

    chosen = running(target)
    do = control.stop if action == "stop" else control.start
    console.print(do(chosen, node, name))


def netem(node: str, delay: float | None, clear: bool, target: str | None) -> None:
    from lab import control

    if (delay is None) == (not clear):
        raise LabError("netem: give --delay MS, or --clear")
    console.print(control.netem(running(target), node, None if clear else delay))
