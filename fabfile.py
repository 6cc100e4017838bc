"""The lab's tasks. Thin on purpose: the logic lives in the lab package.

    fab up [--cache MODE]   build the five-node lab (namespaces, daemons, data)
    fab down                remove every trace of it
    fab status [--json]     nodes, services, health
    fab stats               memcached hit counts and PostgreSQL activity
    fab shell NODE          a shell inside a node's namespace
"""

from fabric import task

from lab import cli


@task(help={"cache": "cache mode: off, local, shared or leases (default)"})
@cli.one_line_errors
def up(c, cache="leases"):
    """Build the lab on this machine: one namespace per node, real daemons, seeded data."""
    cli.up(cache)


@task
@cli.one_line_errors
def down(c):
    """Stop every lab process and remove its namespaces, links, routes and state."""
    cli.down()


@task(help={"json": "print one JSON object (nodes: name, role, address, healthy)"})
@cli.one_line_errors
def status(c, json=False):
    """Show each node, its services and health; exit 1 if any node is unhealthy."""
    cli.status(json)


@task(help={"node": "a node of the topology: balancer, app1, db, client ..."})
@cli.one_line_errors
def shell(c, node):
    """Open a shell inside NODE's network namespace."""
    cli.shell(node)
