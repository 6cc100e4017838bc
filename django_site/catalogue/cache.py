"""The page cache: key names, the cache-mode switch, look-aside reads and invalidation.

All of the site's memcached traffic goes through this module, so LAB_CACHE_MODE is
decided in exactly one place: _store().
"""

import logging
import sys
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.memcached import PyMemcacheCache
from pymemcache.client.base import Client
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import MemcacheError

log = logging.getLogger(__name__)

# Bump when what is cached changes shape: entries written by older code are then never read.
SCHEMA = 1
PREFIX = f"lab:v{SCHEMA}:"
# Writes invalidate explicitly; the TTL only bounds the life of an entry whose delete was lost.
PAGE_TTL = 3600
# What a dead or slow memcached raises; the page is then served from PostgreSQL instead.
CACHE_ERRORS = (OSError, MemcacheError)

# The one mode switch: which CACHES alias serves pages. "leases" is "shared" for now.
_ALIAS_BY_MODE = {"off": None, "local": "local", "shared": "default", "leases": "default"}


def product_key(product_id):
    return f"{PREFIX}product:{int(product_id)}"


def category_key(category_id):
    return f"{PREFIX}category:{int(category_id)}"


def memcached_key(key, key_prefix, version):
    """CACHES KEY_FUNCTION: our keys carry their own version, so memcached sees them as is."""
    return key


class MemoRendezvousHash(RendezvousHash):
    """pymemcache's own key placement, remembered per key.

    Placing a key hashes it once per server in pure Python, which cost more than the
    memcached get itself. The answer only changes when a server joins or leaves.
    """

    MAX_KEYS = 100_000  # bounded memory, far above the lab's page count

    def __init__(self):
        super().__init__()
        self._placement = {}

    def add_node(self, node):
        self._placement.clear()
        super().add_node(node)

    def remove_node(self, node):
        self._placement.clear()
        super().remove_node(node)

    def get_node(self, key):
        node = self._placement.get(key)
        if node is None:
            node = super().get_node(key)
            if node is not None and len(self._placement) < self.MAX_KEYS:
                self._placement[key] = node
        return node


class MemcachedCache(PyMemcacheCache):
    """Django's PyMemcacheCache, made cheap enough for a HIT to cost about one round trip.

    Same servers for the same keys as PyMemcacheCache; the speed-ups are below.
    """

    def __init__(self, server, params):
        super().__init__(server, params)
        self._options.setdefault("hasher", MemoRendezvousHash)
        # Never move a key to another server when its own fails (pymemcache does after 2
        # errors, each thread on its own): a copy left on the stand-in would miss later
        # invalidations. A failing server's keys are read from PostgreSQL; retried each second.
        self._options.setdefault("retry_attempts", sys.maxsize)

    def close(self, **kwargs):
        # Django closes cache sockets after every request: a reconnect per page cost more
        # CPU than the get and leaves a TIME_WAIT socket each time. Every thread has its
        # own client, so keeping its sockets open shares nothing; pymemcache drops a
        # broken socket on the error and reconnects on the next call.
        pass


@dataclass(frozen=True)
class Page:
    """A rendered page as cached: a HIT sends it without touching a template."""

    body: bytes
    headers: dict = field(default_factory=dict)


def _store():
    alias = _ALIAS_BY_MODE[settings.LAB_CACHE_MODE]
    return None if alias is None else caches[alias]


def look_aside(key, build, bypass=False):
    """Return (page, "HIT" | "MISS" | "BYPASS"); build() makes the page from PostgreSQL."""
    store = None if bypass else _store()
    if store is None:
        return build(), "BYPASS"
    cached = _get(store, key)
    if cached is not None:
        return Page(*cached), "HIT"
    page = build()
    _set(store, key, page)
    return page, "MISS"


def invalidate(keys):
    """Delete exactly these keys from the cache the mode uses (none when it is off)."""
    store = _store()
    if store is None:
        return
    try:
        store.delete_many(keys)
    except CACHE_ERRORS as error:
        log.error("cache: invalidating %s failed, stale for up to %ss: %r", keys, PAGE_TTL, error)


def clear_all():
    """Empty every app server's memcached (after a reseed, whatever the mode).

    Server by server, so one that is down does not keep the others from being emptied.
    Return the servers that could not be emptied.
    """
    pool = settings.CACHES["default"]
    timeouts = {name: pool["OPTIONS"][name] for name in ("connect_timeout", "timeout")}
    failed = []
    for server in pool["LOCATION"]:
        client = Client(server, **timeouts)
        try:
            client.flush_all(noreply=False)
        except CACHE_ERRORS:
            failed.append(server)
        finally:
            client.close()
    return failed


def ping():
    """One round trip to this node's own memcached; raise if it does not answer."""
    store = caches["local"]
    key, token = f"{PREFIX}health:{settings.LAB_NODE}", time.time_ns()
    store.set(key, token, timeout=60)
    if store.get(key) != token:
        raise MemcacheError("set then get did not return the value")


def _get(store, key):
    try:
        return store.get(key)
    except CACHE_ERRORS as error:
        log.warning("cache: get %s failed, reading PostgreSQL: %r", key, error)
        return None


def _set(store, key, page):
    try:
        # A plain tuple, not the Page class: unpickling never depends on this module's code.
        store.set(key, (page.body, page.headers), timeout=PAGE_TTL)
    except CACHE_ERRORS as error:
        log.warning("cache: set %s failed: %r", key, error)
