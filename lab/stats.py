"""fab stats: the reference article's "memcached hit counts" screen, plus what PostgreSQL
did. Read from the first app server (memcached and PostgreSQL admit only app servers)."""

from __future__ import annotations

from dataclasses import dataclass

from lab.health import db_password
from lab.probing import probe
from lab.targets import Target

GAUGES = ("curr_items", "curr_connections")
# The product page's own query, as pg_stat_statements normalises it (not the writers'
# SELECT ... FOR UPDATE, which has no join): counted by the herd test and bench.
PRODUCT_QUERY = ('%FROM "catalogue_product" INNER JOIN "catalogue_category"%'
                 'WHERE "catalogue_product"."id" = $1%')
MEMCACHED_FIELDS = ("get_hits", "get_misses", "curr_items", "evictions", "cmd_get",
                    "cmd_set", "delete_hits", "curr_connections")


@dataclass
class Snapshot:
    memcached: dict[str, dict]  # node name -> memcached stats (or {"error": ...})
    postgres: dict              # pg_stat_database totals for the lab database


def snapshot(target: Target) -> Snapshot:
    topo = target.topo
    backend = topo.apps[0]
    servers = probe(target, backend, "memcached", *topo.memcached_servers())
    memcached = {}
    for app, result in zip(topo.apps, servers, strict=True):
        memcached[app.name] = result["stats"] if result["ok"] else {"error": result["error"]}
    postgres = probe(target, backend, "postgres", topo.db.address, str(topo.ports.postgres),
                     extra_env=db_password(target))
    return Snapshot(memcached=memcached, postgres=postgres)


def difference(before: Snapshot, after: Snapshot) -> Snapshot:
    """What happened between two snapshots (counters subtracted; gauges as after)."""
    memcached = {}
    for name, stats in after.memcached.items():
        old = before.memcached.get(name, {})
        if "error" in stats or "error" in old:
            memcached[name] = stats
            continue
        restarted = stats.get("uptime", 0) < old.get("uptime", 0)  # counters began again
        memcached[name] = {k: stats[k] if restarted or k in GAUGES else stats[k] - old.get(k, 0)
                           for k in MEMCACHED_FIELDS}
    postgres = dict(after.postgres)
    if after.postgres.get("ok") and before.postgres.get("ok"):
        for key in ("transactions", "rows_returned", "rows_fetched", "statements"):
            postgres[key] = after.postgres[key] - before.postgres[key]
    return Snapshot(memcached=memcached, postgres=postgres)


def hit_ratio(stats: dict) -> float | None:
    gets = stats.get("get_hits", 0) + stats.get("get_misses", 0)
    return stats.get("get_hits", 0) / gets if gets else None


def product_queries(target: Target) -> int:
    """How often PostgreSQL has run the product page's query (pg_stat_statements)."""
    topo = target.topo
    return probe(target, topo.apps[0], "pgcalls", topo.db.address, str(topo.ports.postgres),
                 PRODUCT_QUERY, extra_env=db_password(target))["calls"]
