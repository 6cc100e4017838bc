"""fab loadtest: drive traffic from the client node through the balancer, capture it on the
balancer, and prove from the packets what the balancer did.

One run leaves three files side by side in captures/, named
<UTC time>-<label or workload>-<cache mode>[-<policy>] (lab/runs.py): .pcap (the capture),
.json (every figure of the run, and the analyser's verdict) and .png (latency distribution
and requests per backend).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab import paths, runs
from lab import stats as lab_stats
from lab.errors import LabError
from lab.targets import Target
from lab.traffic import workloads

LABEL_RE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


@dataclass
class Options:
    workload: str = "product"
    requests: int | None = None
    duration: float | None = None
    concurrency: int = 16
    rate: float | None = None
    label: str = ""  # empty: the workload names the run's files
    capture: bool = True
    processes: int = 0
    record: bool = False
    headers: tuple[str, ...] = ()
    quiet: bool = False  # no progress bar (benchmarks, tests)

    def check(self) -> None:
        if (self.requests is None) == (self.duration is None):
            raise LabError("loadtest: give exactly one of --requests N or --duration S")
        if self.requests is not None and self.requests < 1:
            raise LabError(f"--requests {self.requests}: must be at least 1")
        if self.duration is not None and not 0 < self.duration <= 3600:
            raise LabError(f"--duration {self.duration}: must be from 0 to 3600 seconds")
        if not 1 <= self.concurrency <= 1024:
            raise LabError(f"--concurrency {self.concurrency}: must be from 1 to 1024")
        if self.rate is not None and self.rate <= 0:
            raise LabError(f"--rate {self.rate}: must be a positive number of requests/s")
        workloads.make(self.workload, 1, 1)  # an unknown name is one clear line
        if self.processes < 0:
            raise LabError(f"--processes {self.processes}: must be 0 (one per core) or more")
        if self.label and not LABEL_RE.match(self.label):
            raise LabError(f"--label {self.label!r}: use 1-40 letters, digits, '.', '_' or '-'")

    @property
    def traffic(self) -> str:
        """What the analyser should demand: strict rotation only for one request at a time."""
        return "sequential" if self.concurrency == 1 else "concurrent"


def generator_argv(target: Target, opts: Options) -> list[str]:
    topo = target.topo
    node = target.traffic_node()
    argv = [*target.python(node), "-m", "lab.traffic.generator",
            "--host", topo.balancer.address, "--port", str(topo.ports.http),
            "--workload", opts.workload, "--concurrency", str(opts.concurrency),
            "--products", str(topo.site.products), "--categories", str(topo.site.categories),
            "--processes", str(opts.processes)]
    argv += ["--requests", str(opts.requests)] if opts.requests else [
        "--duration", str(opts.duration)]
    if opts.rate:
        argv += ["--rate", str(opts.rate)]
    if opts.record:
        argv.append("--record")
    for header in opts.headers:
        argv += ["--header", header]
    if opts.quiet:
        argv.append("--quiet")
    return argv


def generate(target: Target, opts: Options) -> dict:
    """Run the load generator on the traffic node; its progress bar shows on our stderr."""
    proc = target.popen(target.traffic_node(), generator_argv(target, opts),
                        stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise LabError(f"the load generator failed (exit {proc.returncode}); see above")
    return json.loads(out)


class Capture:
    """tcpdump on the balancer's interface, in the balancer node, for the length of a run."""

    def __init__(self, target: Target, path: Path):
        self.target, self.path = target, path
        self.node = target.topo.balancer
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Capture:
        # --immediate-mode: without it, stopping right after the traffic loses the packets
        # still in the kernel buffer. -B: a 128 MiB buffer, so a burst on two busy cores is
        # not dropped (the default 2 MiB lost packets at ~1.5k req/s). -Z root: write where
        # we ask, as the caller.
        argv = ["tcpdump", "-i", self.target.interface(self.node), "-s", "0",
                "--immediate-mode", "-B", "131072", "-Z", "root",
                "-w", str(self.target.capture_path(self.path)), "tcp"]
        self.proc = self.target.popen(self.node, argv, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()  # "listening on eth0 ..." once it captures
        if "listening on" not in line:
            self.proc.wait(timeout=5)
            raise LabError(f"tcpdump on {self.node.name} did not start: {line.strip()}")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def stop(self) -> dict:
        """Stop tcpdump; its own packet and drop counts."""
        time.sleep(0.2)  # the last ACKs of the run
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        counts = {}
        for number, what in re.findall(r"(\d+) packets? (captured|received by filter|"
                                       r"dropped by kernel)", err):
            counts[what.replace(" ", "_")] = int(number)
        self.target.collect_capture(self.node, self.path)
        return counts


def run(target: Target, opts: Options) -> tuple[dict, Path]:
    """The whole run; returns the result (also saved as JSON) and the path stem."""
    opts.check()
    opts.record = opts.record or opts.workload == "mixed"  # the checker needs every request
    paths.CAPTURES.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    mode = target.cache_mode()
    stem = paths.CAPTURES / runs.stem_name(stamp, opts.label, opts.workload, mode)
    before = lab_stats.snapshot(target)
    if opts.capture:
        with Capture(target, stem.with_suffix(".pcap")) as capture:
            result = generate(target, opts)
            result["capture"] = {"file": stem.with_suffix(".pcap").name, **capture.stop()}
    else:
        result = generate(target, opts)
    after = lab_stats.snapshot(target)
    diff = lab_stats.difference(before, after)
    result.update(label=opts.label or opts.workload, started=stamp, target=target.name,
                  memcached=diff.memcached, postgres=diff.postgres, cache_mode=mode,
                  lab=runs.lab_identity(target))
    if opts.workload == "mixed":
        from lab.traffic.consistency import check_records

        result["consistency"] = check_records(result["records"]).to_dict()
    if opts.capture:
        result["analysis"] = analyse_capture(target, stem.with_suffix(".pcap"), opts.traffic)
    result["failures"] = failures(result)
    stem.with_suffix(".json").write_text(json.dumps(
        {k: v for k, v in result.items() if k != "records"}, indent=1))
    return result, stem


def analyse_capture(target: Target, pcap: Path, traffic: str) -> dict:
    from lab.analysis.analyse import analyse

    topo = target.topo
    names = {node.address: node.name for node in topo.nodes}
    analysis = analyse(pcap, names=names, upstream_order=[a.name for a in topo.apps],
                       traffic=traffic)
    return analysis.to_dict()


def failures(result: dict) -> list[str]:
    """Why this run fails, if it does: failed requests, lost packets, a failed verdict."""
    found = []
    if result["errors"]:
        found.append(f"{sum(result['errors'].values())} requests got no response "
                     f"({', '.join(result['errors'])})")
    if result["non_2xx"]:
        found.append(f"{result['non_2xx']} responses were not 2xx")
    capture = result.get("capture", {})
    if capture.get("dropped_by_kernel"):
        found.append(f"the capture lost {capture['dropped_by_kernel']} packets (kernel drops)")
    stale = result.get("consistency", {}).get("stale_reads")
    if stale:
        found.append(f"{stale} stale reads (a read returned an older version than a write "
                     "acknowledged before it began)")
    analysis = result.get("analysis")
    if analysis and analysis["verdict"] != "pass":
        found.append("the capture's verdict is fail: " + "; ".join(analysis.get("reasons", [])))
    return found
