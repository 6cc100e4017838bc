"""The lab's tasks. Thin on purpose: the logic lives in the lab package.

    fab up [--cache MODE]   build the five-node lab (namespaces, daemons, data)
    fab down                remove every trace of it
    fab status [--json]     nodes, services, health
    fab stats               memcached hit counts and PostgreSQL activity
    fab shell NODE          a shell inside a node's namespace
"""

from fabric import task

from lab import cli

TARGET = "local (default: namespaces on this machine), vagrant or ssh"


@task(help={"cache": "cache mode: off, local, shared or leases (default)", "target": TARGET})
@cli.one_line_errors
def up(c, cache="leases", target=None):
    """Build the lab: one namespace (or VM) per node, real daemons, seeded data."""
    cli.up(cache, target)


@task(help={"target": TARGET})
@cli.one_line_errors
def down(c, target=None):
    """Stop every lab process and remove its namespaces, links, routes and state."""
    cli.down(target)


@task(help={"json": "print one JSON object (nodes: name, role, address, healthy)",
            "target": TARGET})
@cli.one_line_errors
def status(c, json=False, target=None):
    """Show each node, its services and health; exit 1 if any node is unhealthy."""
    cli.status(json, target)


@task(help={"node": "a node of the topology: balancer, app1, db, client ..."})
@cli.one_line_errors
def shell(c, node):
    """Open a shell inside NODE's network namespace."""
    cli.shell(node)


@task(help={"target": TARGET})
@cli.one_line_errors
def stats(c, target=None):
    """memcached hits, misses, items and evictions per server; PostgreSQL activity."""
    cli.stats(target)


@task(help={"target": TARGET})
@cli.one_line_errors
def demo(c, target=None):
    """Show the lab working: status, the round-robin rotation, a MISS then a HIT."""
    cli.demo(target)


@task(help={
    "requests": "send N requests in all", "duration": "or send for S seconds",
    "concurrency": "connections at once (default 16; 1 = sequential, strict rotation)",
    "rate": "fixed arrival rate, requests/s (latency from the intended send time)",
    "workload": "product (default), category, trivial, uncached, nginx",
    "label": "name in the run's file names (default: the workload)",
    "no_capture": "skip the packet capture",
    "processes": "load generator processes (default: one per core)", "target": TARGET})
@cli.one_line_errors
def loadtest(c, requests=None, duration=None, concurrency=None, rate=None, workload="product",
             label="", no_capture=False, processes=None, target=None):
    """Drive traffic from the client node, capture it on the balancer, judge it."""
    from lab.traffic.loadtest import Options

    if requests is None and duration is None:
        duration = 10
    opts = Options(workload=workload, requests=cli.number(requests, int, "--requests"),
                   duration=cli.number(duration, float, "--duration"),
                   concurrency=cli.number(concurrency or 16, int, "--concurrency"),
                   rate=cli.number(rate, float, "--rate"), label=label,
                   capture=not no_capture,
                   processes=cli.number(processes or 0, int, "--processes"))
    cli.loadtest(opts, target)


@task(help={"pcap": "a pcap or pcapng file (ours, tcpdump's or Wireshark's)",
            "json": "print one JSON object", "flow": "show the first N exchanges as a flow",
            "png": "draw the flow diagram into this PNG file (a name ending in .png)",
            "width": "fit the text flow into this many columns (default 100)",
            "traffic": "sequential or concurrent (default: detected from the capture)"})
@cli.one_line_errors
def analyse(c, pcap, json=False, flow=None, png=None, traffic=None, width=None):
    """Prove from a capture what the balancer did: rotation, balance, upstream times."""
    from invoke.exceptions import Exit

    code = cli.analyse(pcap, json, cli.number(flow or 0, int, "--flow"), png, traffic,
                       cli.number(width, int, "--width"))
    if code:
        raise Exit(code=code)


@task(help={"mode": "off, local, shared or leases", "target": TARGET})
@cli.one_line_errors
def cache(c, mode, target=None):
    """Switch the app servers' cache mode (settings redeployed, data kept, caches flushed)."""
    cli.cache(mode, target)


@task(help={"node": "e.g. app2", "service": "apache, memcached, postgres or nginx",
            "target": TARGET})
@cli.one_line_errors
def stop(c, node, service, target=None):
    """Stop one service on one node (to watch the lab cope)."""
    cli.service("stop", node, service, target)


@task(help={"node": "e.g. app2", "service": "apache, memcached, postgres or nginx",
            "target": TARGET})
@cli.one_line_errors
def start(c, node, service, target=None):
    """Start a stopped service again (provisioning is idempotent: nothing else changes)."""
    cli.service("start", node, service, target)


@task(help={"node": "e.g. db", "delay": "milliseconds added to each round trip with the node",
            "clear": "remove the delay", "target": TARGET})
@cli.one_line_errors
def netem(c, node, delay=None, clear=False, target=None):
    """Delay a node's link: tc netem, or a userspace delayer where the kernel lacks netem."""
    cli.netem(node, cli.number(delay, float, "--delay"), clear, target)


@task(help={"target": TARGET})
@cli.one_line_errors
def runs(c, target=None):
    """List the saved load test runs: time, workload, mode, req/s, p99, verdict, stale reads."""
    cli.runs(target)


@task(help={"first": "a run: its name, a unique part of it, or its number in fab runs",
            "second": "the run to compare it with"})
@cli.one_line_errors
def compare(c, first, second):
    """Show two runs side by side: a table, and one PNG of both."""
    cli.compare(first, second)


@task(help={"keep": "how many of the newest runs to keep (default 10)"})
@cli.one_line_errors
def prune(c, keep=10):
    """Remove older runs' captures, results and PNGs from captures/ (never the samples)."""
    cli.prune(cli.number(keep, int, "--keep"))
