"""Small checks that run *inside* a lab node (python -m lab.probe ... under ip netns exec),
so every packet they send starts and ends in the lab. Each prints one JSON document.

    python -m lab.probe http URL...                 status, X-Served-By, X-Cache of each
    python -m lab.probe post URL FIELD=VALUE...     a form POST (the site's write API)
    python -m lab.probe memcached HOST:PORT...      'stats' of each server
    python -m lab.probe flush HOST:PORT...          empty each memcached server
    python -m lab.probe pgcalls HOST PORT PATTERN   calls of statements matching PATTERN
    python -m lab.probe postgres HOST PORT          pg_stat_database and statement counts
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def http(url: str, timeout: float = 3.0, form: dict[str, str] | None = None) -> dict:
    start = time.perf_counter()
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with urllib.request.urlopen(url, data=data, timeout=timeout) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, exc.headers, exc.read()
    except OSError as exc:
        return {"url": url, "ok": False, "error": str(getattr(exc, "reason", exc))}
    return {
        "url": url,
        "ok": 200 <= status < 300,
        "status": status,
        "served_by": headers.get("X-Served-By"),
        "cache": headers.get("X-Cache"),
        "request_id": headers.get("X-Request-ID"),
        "ms": round((time.perf_counter() - start) * 1000, 2),
        "version": headers.get("X-Product-Version"),
        "body": body[:2000].decode("utf-8", "replace"),
    }


def memcached_stats(server: str, timeout: float = 2.0) -> dict:
    host, port = server.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return {"server": server, "ok": False, "error": exc.strerror or str(exc)}
    stats = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = int(parts[2]) if parts[2].isdigit() else parts[2]
    return {"server": server, "ok": True, "stats": stats}


def memcached_flush(server: str, timeout: float = 2.0) -> dict:
    host, port = server.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"flush_all\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        return {"server": server, "ok": False, "error": exc.strerror or str(exc)}
    return {"server": server, "ok": answer.startswith(b"OK")}


def connect_lab_db(host: str, port: str):
    import psycopg2  # only where it is used: the probe starts fast for the other checks

    return psycopg2.connect(host=host, port=port, dbname="lab", user="lab",
                            password=os.environ["LAB_DB_PASSWORD"], connect_timeout=3)


def pg_calls(host: str, port: str, pattern: str) -> dict:
    """How often statements whose text matches a LIKE pattern ran (pg_stat_statements)."""
    conn = connect_lab_db(host, port)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s "
                    "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'lab' "
                    "AND s.query LIKE %s", (pattern,))
        calls = cur.fetchone()[0]
    conn.close()
    return {"ok": True, "calls": calls}


def postgres_stats(host: str, port: str) -> dict:
    import psycopg2

    try:
        conn = connect_lab_db(host, port)
    except psycopg2.Error as exc:
        return {"ok": False, "error": str(exc).strip().splitlines()[0]}
    with conn, conn.cursor() as cur:
        cur.execute("SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, "
                    "numbackends FROM pg_stat_database WHERE datname = 'lab'")
        xacts, returned, fetched, backends = cur.fetchone()
        cur.execute("SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s "
                    "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'lab' "
                    "AND s.query NOT LIKE '%pg_stat%'")  # not our own probes
        statements = cur.fetchone()[0]
    conn.close()
    return {"ok": True, "transactions": xacts, "rows_returned": returned,
            "rows_fetched": fetched, "backends": backends, "statements": statements}


def main(argv: list[str]) -> int:
    kind, args = argv[0], argv[1:]
    if kind == "http":
        result = [http(url) for url in args]
    elif kind == "post":
        result = http(args[0], form=dict(arg.split("=", 1) for arg in args[1:]))
    elif kind == "memcached":
        result = [memcached_stats(server) for server in args]
    elif kind == "flush":
        result = [memcached_flush(server) for server in args]
    elif kind == "pgcalls":
        result = pg_calls(*args)
    elif kind == "postgres":
        result = postgres_stats(*args)
    else:
        print(f"probe: unknown check {kind!r}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
