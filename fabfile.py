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
