"""The load generator. It runs *inside the client node* (ip netns exec lab-client ...), so its
traffic starts and ends in the lab, and prints one JSON result on stdout.

    python -m lab.traffic.generator --host H --port P --workload product \\
        (--requests N | --duration S) [--concurrency C] [--rate R] [--processes K]

Several processes (uvloop, the lean client in lab.traffic.http) share the connections.
Closed loop by default: each connection sends its next request when the last one is
answered. With --rate the arrivals are fixed in advance (R per second in all) and latency
is counted from each request's *intended* send time, as wrk2 does, so a stall shows in the
tail instead of silently slowing the arrivals (coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass
from multiprocessing import connection

from hdrh.histogram import HdrHistogram

from lab.traffic import http, workloads

LOWEST_US, HIGHEST_US, DIGITS = 1, 120_000_000, 3  # latency range 1 µs .. 120 s
PROGRESS_EVERY = 32  # requests between updates of the shared progress counter


@dataclass
class Plan:
    host: str
    port: int
    workload: str
    products: int
    categories: int
    concurrency: int
    processes: int
    requests: int | None  # in all; None with duration
    duration: float | None
    rate: float | None  # arrivals per second in all; None = closed loop
    seed: int
    record: bool = False  # keep (start, end, request, response) of every request
    headers: tuple[str, ...] = ()  # extra request headers, "Name: value"

    def share(self, index: int, total: int | float | None):
        """This process's part of a total split over the processes."""
        if total is None:
            return None
        if isinstance(total, int):
            return total // self.processes + (1 if index < total % self.processes else 0)
        return total / self.processes


class Latencies:
    """Latencies in µs into an HDR histogram, cheaply: appended to a C array per request,
    folded into the histogram (one record per distinct value) every CHUNK requests."""

    CHUNK = 65536

    def __init__(self):
        self.histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self.pending = array("q")

    def record(self, microseconds: int) -> None:
        self.pending.append(microseconds)
        if len(self.pending) >= self.CHUNK:
            self.fold()

    def fold(self) -> HdrHistogram:
        for value, count in Counter(self.pending).items():
            self.histogram.record_value(min(max(LOWEST_US, value), HIGHEST_US), count)
        self.pending = array("q")
        return self.histogram


class Tally:
    """What one process saw; merged across processes at the end."""

    def __init__(self):
        self.latencies = Latencies()
        self.status: Counter = Counter()
        self.served_by: Counter = Counter()
        self.cache: Counter = Counter()
        self.errors: Counter = Counter()
        self.records: list = []

    def to_dict(self) -> dict:
        return {"histogram": self.latencies.fold().encode().decode(),
                "status": dict(self.status),
                "served_by": dict(self.served_by), "cache": dict(self.cache),
                "errors": dict(self.errors), "records": self.records}


async def run_process(plan: Plan, index: int, progress, start_at: float) -> dict:
    workload = workloads.make(plan.workload, plan.products, plan.categories)
    rng = random.Random(plan.seed * 1000 + index)
    tally = Tally()
    quota = plan.share(index, plan.requests)
    rate = plan.share(index, plan.rate)
    connections = plan.share(index, plan.concurrency)
    host = f"{plan.host}:{plan.port}" if plan.port != 80 else plan.host
    tickets = iter(range(quota if quota is not None else sys.maxsize))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    start = time.perf_counter()
    deadline = start + plan.duration if plan.duration else float("inf")
    done = [0]
    encoded: dict[tuple, bytes] = {}  # a bodiless request's bytes, made once

    def encode(request) -> bytes:
        if request.body:
            return http.request_bytes(request.method, host, request.path, request.body,
                                      headers=plan.headers)
        raw = encoded.get((request.method, request.path))
        if raw is None:
            raw = encoded[request.method, request.path] = http.request_bytes(
                request.method, host, request.path, headers=plan.headers)
        return raw

    async def connection_loop():
        conn = None
        for ticket in tickets:
            intended = start + ticket / rate if rate else time.perf_counter()
            if intended >= deadline:
                break
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            request = workload.next(rng)
            raw = encode(request)
            sent = time.perf_counter()
            try:
                if conn is None or conn.closed or not conn.keep_alive:
                    if conn is not None:
                        conn.close()
                    conn = await http.connect(plan.host, plan.port)
                response = await conn.request(raw)
            except (OSError, ConnectionError) as exc:
                tally.errors[type(exc).__name__] += 1
                conn = None
                continue
            finally:
                ended = time.perf_counter()
                tally.latencies.record(int((ended - intended) * 1e6))
                done[0] += 1
                if done[0] % PROGRESS_EVERY == 0:
                    with progress.get_lock():
                        progress.value += PROGRESS_EVERY
            record(tally, request, response, sent, ended, plan.record)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(connection_loop() for _ in range(connections)))
    with progress.get_lock():
        progress.value += done[0] % PROGRESS_EVERY
    result = tally.to_dict()
    result["seconds"] = time.perf_counter() - start
    return result


def record(tally: Tally, request, response, sent: float, ended: float, keep: bool) -> None:
    tally.status[str(response.status)] += 1
    tally.served_by[response.header(b"x-served-by") or "-"] += 1
    cache = response.header(b"x-cache")
    if cache:
        tally.cache[cache] += 1
    if keep:
        tally.records.append((sent, ended, request.method, request.key, response.status,
                              response.header(b"x-product-version"), response.body[:200]
                              .decode("utf-8", "replace") if request.method != "GET" else ""))


def child(plan: Plan, index: int, progress, start_at: float, pipe) -> None:
    import uvloop

    try:
        pipe.send(uvloop.run(run_process(plan, index, progress, start_at)))
    except BaseException as exc:  # the parent reports it as one line
        pipe.send({"fatal": f"{type(exc).__name__}: {exc}"})
    finally:
        pipe.close()


def run(plan: Plan, show_progress: bool = True) -> dict:
    """Run the plan over plan.processes processes and merge what they saw."""
    ctx = multiprocessing.get_context("fork")
    progress = ctx.Value("q", 0)
    start_at = time.time() + 0.3  # all processes start together
    children, pipes = [], []
    for index in range(plan.processes):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=child, args=(plan, index, progress, start_at, send))
        proc.start()
        send.close()
        children.append(proc)
        pipes.append(receive)
    parts = collect(plan, progress, pipes, show_progress)
    for proc in children:
        proc.join()
    fatal = [p["fatal"] for p in parts if "fatal" in p]
    if fatal:
        raise SystemExit(f"load generator failed: {fatal[0]}")
    return merge(plan, parts)


def collect(plan: Plan, progress, pipes: list, show: bool) -> list[dict]:
    """Each child's result, read as soon as it is sent (a large one would otherwise fill
    the pipe and block the child), with a progress bar on stderr meanwhile."""
    results: dict[int, dict] = {}

    def receive_ready(timeout: float) -> None:
        for pipe in connection.wait([p for p in pipes if id(p) not in results], timeout):
            try:
                results[id(pipe)] = pipe.recv()
            except EOFError:
                results[id(pipe)] = {"fatal": "a load generator process died"}

    if not show:
        while len(results) < len(pipes):
            receive_ready(1.0)
        return [results[id(p)] for p in pipes]
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    total = plan.requests or plan.duration
    unit = "requests" if plan.requests else "s"
    columns = (TextColumn(f"[bold]{plan.workload}[/] c={plan.concurrency}"), BarColumn(),
               TextColumn("{task.completed:.0f}/{task.total:.0f} " + unit),
               TextColumn("{task.fields[rps]} req/s"), TimeRemainingColumn())
    started = time.time()
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("load", total=total, rps="-")
        while len(results) < len(pipes):
            receive_ready(0.2)
            elapsed = max(1e-3, time.time() - started - 0.3)
            count = progress.value
            done = count if plan.requests else min(elapsed, plan.duration)
            bar.update(task, completed=done, rps=f"{count / elapsed:,.0f}")
    return [results[id(p)] for p in pipes]


def merge(plan: Plan, parts: list[dict]) -> dict:
    histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    totals = {"status": Counter(), "served_by": Counter(), "cache": Counter(), "errors": Counter()}
    records = []
    for part in parts:
        histogram.add(HdrHistogram.decode(part["histogram"].encode()))
        for key, counter in totals.items():
            counter.update(part[key])
        records.extend(part["records"])
    seconds = max(part["seconds"] for part in parts)
    completed = sum(totals["status"].values())
    return {
        "plan": asdict(plan),
        "seconds": round(seconds, 3),
        "requests": completed + sum(totals["errors"].values()),
        "completed": completed,
        "rps": round(completed / seconds, 1) if seconds else 0.0,
        "status": dict(sorted(totals["status"].items())),
        "non_2xx": sum(n for code, n in totals["status"].items() if not code.startswith("2")),
        "errors": dict(totals["errors"]),
        "served_by": dict(sorted(totals["served_by"].items())),
        "cache": dict(sorted(totals["cache"].items())),
        "latency_ms": latency_summary(histogram),
        "histogram": histogram.encode().decode(),
        "records": sorted(records) if plan.record else [],
    }


def latency_summary(histogram: HdrHistogram) -> dict:
    if histogram.get_total_count() == 0:
        return {}
    points = {"p50": 50, "p90": 90, "p99": 99, "p99.9": 99.9}
    summary = {name: histogram.get_value_at_percentile(p) / 1000 for name, p in points.items()}
    summary["max"] = histogram.get_max_value() / 1000
    summary["mean"] = round(histogram.get_mean_value() / 1000, 3)
    return summary


def parse(argv: list[str]) -> Plan:
    parser = argparse.ArgumentParser(prog="lab.traffic.generator")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--workload", default="product", choices=list(workloads.WORKLOADS))
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=0, help="0: one per core, at most C")
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--requests", type=int)
    amount.add_argument("--duration", type=float)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    processes = args.processes or min(os.cpu_count() or 1, args.concurrency)
    return Plan(host=args.host, port=args.port, workload=args.workload, products=args.products,
                categories=args.categories, concurrency=args.concurrency,
                processes=min(processes, args.concurrency), requests=args.requests,
                duration=args.duration, rate=args.rate, seed=args.seed, record=args.record,
                headers=tuple(args.header))


def main(argv: list[str]) -> int:
    plan = parse(argv)
    show = "--quiet" not in argv
    json.dump(run(plan, show_progress=show), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
