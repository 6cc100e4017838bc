"""The page cache: key names, the cache-mode switch, look-aside reads and invalidation.

All of the site's memcached traffic goes through this module, so LAB_CACHE_MODE is
decided in exactly one place: MODES. docs/cache-modes.md explains the four modes and why
"leases" serves no stale page and sends one database query per cold key.
"""

import logging
import secrets
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.memcached import PyMemcacheCache
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
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

# Leases (mode "leases"). A reader that misses puts a placeholder holding a random token in
# the key ("add": only one reader wins), reads PostgreSQL, then swaps its page in with "cas"
# on the placeholder's cas id: a writer's delete in between makes the cas fail.
LEASE_PREFIX = "lab-lease:"
LEASE_TTL = 3  # s: a holder that dies frees the key this soon
LEASE_WAIT = 0.5  # s: how long a reader waits for another reader's page before reading the db
LEASE_POLL = (0.002, 0.004, 0.008, 0.016)  # s: between looks at the key, then the last again
# After an error on a memcached server, a thread reads PostgreSQL for this long, then retries.
RETRY_AFTER = 1.0
# Test hook (LAB_TEST_HOOKS=1 only): X-Lab-Delay-Set-Ms: N sleeps between db read and set.
DELAY_HEADER = "X-Lab-Delay-Set-Ms"
MAX_SET_DELAY_MS = 5000


@dataclass(frozen=True)
class Mode:
    alias: str | None  # the CACHES alias that serves pages; None: no cache
    leases: bool = False  # lease reads, and deletes sent to every server of the pool


# The one mode switch.
MODES = {
    "off": Mode(None),
    "local": Mode("local"),  # this node's memcached only: stale after a write elsewhere
    "shared": Mode("default"),  # one pool, get/set/delete: stale sets and herds on purpose
    "leases": Mode("default", leases=True),
}


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


class KernelTimeoutClient(Client):
    """pymemcache's Client with its socket timeout kept by the kernel, not by Python.

    On a socket with a Python timeout every send and recv is preceded by a poll(): a get
    is four system calls, each handing the GIL to another thread and back. A blocking
    socket with SO_SNDTIMEO/SO_RCVTIMEO is two, and fails just as fast: a late or lost
    answer raises OSError (EAGAIN), on which pymemcache closes the socket.
    """

    def __init__(self, server, timeout=None, **kwargs):
        super().__init__(server, timeout=None, **kwargs)  # blocking once connected
        self.io_timeout = timeout

    def _connect(self):
        super()._connect()
        if self.io_timeout:
            seconds = int(self.io_timeout)
            limit = struct.pack("ll", seconds, int((self.io_timeout - seconds) * 1e6))
            for option in (socket.SO_SNDTIMEO, socket.SO_RCVTIMEO):
                self.sock.setsockopt(socket.SOL_SOCKET, option, limit)


class LabHashClient(HashClient):
    client_class = KernelTimeoutClient


class MemcachedCache(PyMemcacheCache):
    """Django's PyMemcacheCache, made cheap enough for a HIT to cost about one round trip.

    Same servers for the same keys as PyMemcacheCache; the speed-ups are below. Django
    gives every thread its own instance, so nothing here is shared between threads.
    """

    def __init__(self, server, params):
        super().__init__(server, params)
        self._options.setdefault("hasher", MemoRendezvousHash)
        # Never move a key to another server when its own fails (pymemcache does after 2
        # errors, each thread on its own): a copy left on the stand-in would miss later
        # invalidations. A failing server's keys are read from PostgreSQL; retried each second.
        self._options.setdefault("retry_attempts", sys.maxsize)
        self._failed = {}  # server -> monotonic time until which this thread skips it
        self._class = LabHashClient

    def close(self, **kwargs):
        # Django closes cache sockets after every request: a reconnect per page cost more
        # CPU than the get and leaves a TIME_WAIT socket each time. Every thread has its
        # own client, so keeping its sockets open shares nothing; pymemcache drops a
        # broken socket on the error and reconnects on the next call.
        pass

    # The lease path talks to the key's own server directly: pymemcache's HashClient would
    # answer "not stored" / "not found" for a server in its retry window without asking it,
    # which a lease cannot tell from a real answer.
    def server_for(self, key):
        return self._cache.hasher.get_node(key)

    def client_for(self, server):
        """The server's client, or None while this thread waits to retry it."""
        if self._failed:
            if time.monotonic() < self._failed.get(server, 0):
                return None
            self._failed.pop(server, None)
        return self._cache.clients[server]

    def clients(self):
        return dict(self._cache.clients)

    def failed(self, server, error):
        log.warning("cache: %s failed, reading PostgreSQL for %ss: %r", server, RETRY_AFTER, error)
        self._failed[server] = time.monotonic() + RETRY_AFTER


@dataclass(frozen=True)
class Page:
    """A rendered page as cached: a HIT sends it without touching a template."""

    body: bytes
    headers: dict = field(default_factory=dict)


def _mode():
    return MODES[settings.LAB_CACHE_MODE]


def look_aside(key, build, bypass=False, set_delay=0.0):
    """Return (page, "HIT" | "MISS" | "BYPASS"); build() makes the page from PostgreSQL.

    set_delay (seconds, test hook) is slept between the database read and the cache set.
    """
    mode = _mode()
    if bypass or mode.alias is None:
        return build(), "BYPASS"
    store = caches[mode.alias]
    if mode.leases:
        server = store.server_for(key)
        client = store.client_for(server)
        if client is None:
            return build(), "MISS"
        return leased_read(client, key, build, lambda e: store.failed(server, e), set_delay)
    cached = _get(store, key)
    if cached is not None:
        return Page(*cached), "HIT"
    page = build()
    _pause(set_delay)
    _set(store, key, page)
    return page, "MISS"


# --- leases --------------------------------------------------------------------------------


def lease_value(token):
    """The placeholder a lease holder puts in the key (a str; pages are tuples)."""
    return f"{LEASE_PREFIX}{token}"


def lease_token(value):
    """The token of a placeholder, or None if the value is not one."""
    if isinstance(value, str) and value.startswith(LEASE_PREFIX):
        return value[len(LEASE_PREFIX) :] or None
    return None


def new_token():
    return secrets.token_hex(8)


def _is_page(value):
    return isinstance(value, tuple) and len(value) == 2


def leased_read(
    client, key, build, on_error, set_delay=0.0, clock=time.monotonic, sleep=time.sleep
):
    """Look-aside read that can neither put a stale page back nor let a herd through.

    client: the pymemcache Client of the key's server (get, gets, add, cas, delete).
    on_error(error) is called when memcached fails; the page then comes from PostgreSQL.
    A HIT is one get. A miss: add a placeholder; the winner reads PostgreSQL and swaps
    its page in with cas, which fails if a writer deleted the key meanwhile. The others
    wait up to LEASE_WAIT for that page; then they read PostgreSQL and store nothing.
    """
    try:
        found, cas_id = _lease(client, key, clock, sleep)
    except CACHE_ERRORS as error:
        on_error(error)
        return build(), "MISS"
    if found is not None:
        return Page(*found), "HIT"
    if cas_id is None:
        return build(), "MISS"  # no lease to fill: read PostgreSQL, store nothing
    return _fill(client, key, cas_id, build, on_error, set_delay), "MISS"


def _lease(client, key, clock, sleep):
    """(cached page, None) | (None, cas id of our placeholder) | (None, None): no lease."""
    deadline = None
    polls = 0
    while True:
        value = client.get(key)
        if _is_page(value):
            return value, None
        if value is None:
            token = new_token()
            if client.add(key, lease_value(token), expire=LEASE_TTL, noreply=False):
                value, cas_id = client.gets(key)
                if lease_token(value) == token:
                    return None, cas_id  # the lease is ours
                if _is_page(value):
                    return value, None
                return None, None  # deleted (or expired) between add and gets: a write landed
            # Another reader won the add: wait for its page like any other waiter.
        now = clock()
        if deadline is None:
            deadline = now + LEASE_WAIT
        elif now >= deadline:
            return None, None  # the holder is slow or gone; its lease stands
        sleep(LEASE_POLL[min(polls, len(LEASE_POLL) - 1)])
        polls += 1


def _fill(client, key, cas_id, build, on_error, set_delay):
    try:
        page = build()
    except BaseException:
        # Http404 and friends: free the key now so the waiters do not wait in vain.
        # A delete never makes anything stale, whoever's placeholder it removes.
        try:
            client.delete(key, noreply=False)
        except CACHE_ERRORS as error:
            on_error(error)
        raise
    _pause(set_delay)
    try:
        # None (NOT_FOUND: deleted by a writer) or False (EXISTS: a newer lease): not stored.
        client.cas(key, (page.body, page.headers), cas_id, expire=PAGE_TTL, noreply=False)
    except CACHE_ERRORS as error:
        on_error(error)
    return page


# --- invalidation --------------------------------------------------------------------------


def invalidate(keys):
    """Delete exactly these keys from the cache the mode uses (none when it is off).

    Called after COMMIT. In "leases" every server of the pool gets the deletes, whichever
    owns the keys, and a delete a server did not acknowledge is retried until it is.
    """
    mode = _mode()
    if mode.alias is None:
        return
    store = caches[mode.alias]
    if mode.leases:
        broadcast_delete(store.clients(), keys, _replayer)
        return
    try:
        store.delete_many(keys)
    except CACHE_ERRORS as error:
        log.error("cache: invalidating %s failed, stale for up to %ss: %r", keys, PAGE_TTL, error)


def broadcast_delete(clients, keys, replayer):
    """Delete keys on every server ({server: Client}); hand the failures to replayer.

    Each server is asked, even one that failed a moment ago: a delete that is skipped
    would leave a stale page wherever the server is alive after all.
    """
    for server, client in clients.items():
        try:
            client.delete_many(keys, noreply=False)
        except CACHE_ERRORS as error:
            log.warning("cache: delete %s on %s failed, will retry: %r", keys, server, error)
            replayer.add(server, keys)


class Replayer:
    """Deletes a server did not acknowledge, retried from a thread until it does.

    A server that was stopped comes back empty, so the retries are harmless there; one
    that was only unreachable (slow, partitioned) still holds the pages, and these deletes
    reach it as soon as it answers. Past MAX_KEYS pending keys, one flush_all replaces them.
    """

    INTERVAL = 0.2  # s
    MAX_KEYS = 10_000
    FLUSH = object()

    def __init__(self, make_client, threaded=True):
        self._make_client = make_client  # server -> a Client of its own
        self._threaded = threaded  # False: replay() is called by hand (tests)
        self._lock = threading.Lock()
        self._pending = {}  # server -> set of keys, or FLUSH
        self._thread = None

    def add(self, server, keys):
        with self._lock:
            pending = self._pending.setdefault(server, set())
            if pending is not self.FLUSH:
                pending.update(keys)
                if len(pending) > self.MAX_KEYS:
                    self._pending[server] = self.FLUSH
            if self._threaded and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cache-replay", daemon=True)
                self._thread.start()

    def pending(self):
        """A copy: {server: set of keys, or FLUSH}."""
        with self._lock:
            return {
                server: keys if keys is self.FLUSH else set(keys)
                for server, keys in self._pending.items()
            }

    def replay(self):
        """One attempt per server with pending deletes; return how many servers remain."""
        for server, keys in self.pending().items():
            client = self._make_client(server)
            try:
                if keys is self.FLUSH:
                    client.flush_all(noreply=False)
                else:
                    client.delete_many(sorted(keys), noreply=False)
            except CACHE_ERRORS:
                continue
            finally:
                client.close()
            with self._lock:
                now = self._pending.get(server)
                if now is self.FLUSH or keys is self.FLUSH:
                    if now is keys:
                        del self._pending[server]
                elif now is not None:
                    now -= keys
                    if not now:
                        del self._pending[server]
            log.warning("cache: replayed the lost deletes on %s", server)
        return len(self.pending())

    def _run(self):
        while True:
            time.sleep(self.INTERVAL)
            if not self.replay():
                with self._lock:
                    if not self._pending:
                        self._thread = None
                        return


def _replay_client(server):
    options = settings.CACHES["default"]["OPTIONS"]
    return Client(server, connect_timeout=options["connect_timeout"], timeout=options["timeout"])


_replayer = Replayer(_replay_client)


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


# --- the test hook -------------------------------------------------------------------------


def set_delay_ms(header, enabled):
    """Milliseconds asked by X-Lab-Delay-Set-Ms, if test hooks are on and it is valid; else 0."""
    if not enabled or header is None:
        return 0
    header = header.strip()
    if not header.isascii() or not header.isdigit() or int(header) > MAX_SET_DELAY_MS:
        return 0
    return int(header)


def request_set_delay(request):
    """The test hook's delay for this request, in seconds (0 unless LAB_TEST_HOOKS=1)."""
    if not settings.LAB_TEST_HOOKS:
        return 0.0
    return set_delay_ms(request.headers.get(DELAY_HEADER), True) / 1000


def _pause(seconds):
    if seconds > 0:
        time.sleep(seconds)


# --- shared and local: Django's own get/set ------------------------------------------------


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
