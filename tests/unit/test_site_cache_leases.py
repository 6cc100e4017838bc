"""catalogue.cache, mode "leases": the lease protocol against a memcached stand-in with
memcached's own add/gets/cas/delete semantics (no lab needed), and against a real memcached
on 127.0.0.1 when the binary is installed.

The races are forced deterministically: the "database read" (build) is where a writer's
commit and after-commit delete land, and the waiter's sleep is where the holder finishes.
"""

import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django_site"))

from catalogue import cache  # noqa: E402
from pymemcache.client.base import Client  # noqa: E402
from pymemcache.serde import pickle_serde  # noqa: E402

KEY = cache.product_key(7)


class FakeMemcached:
    """One memcached server: values with cas ids, and a log of the commands it was sent."""

    def __init__(self):
        self.items = {}  # key -> (value, cas id)
        self.next_cas = 1
        self.commands = []
        self.fail = False  # True: every command raises, like a stopped server

    def _cmd(self, name):
        self.commands.append(name)
        if self.fail:
            raise ConnectionRefusedError(111, "Connection refused")

    def _store(self, key, value):
        self.items[key] = (value, self.next_cas)
        self.next_cas += 1

    def get(self, key):
        self._cmd("get")
        return self.items.get(key, (None, None))[0]

    def gets(self, key):
        self._cmd("gets")
        return self.items.get(key, (None, None))

    def add(self, key, value, expire=0, noreply=None):
        self._cmd("add")
        if key in self.items:
            return False
        self._store(key, value)
        return True

    def set(self, key, value, expire=0, noreply=None):
        self._cmd("set")
        self._store(key, value)
        return True

    def cas(self, key, value, cas, expire=0, noreply=False):
        self._cmd("cas")
        if key not in self.items:
            return None  # NOT_FOUND
        if self.items[key][1] != cas:
            return False  # EXISTS
        self._store(key, value)
        return True

    def delete(self, key, noreply=None):
        self._cmd("delete")
        return self.items.pop(key, None) is not None

    def delete_many(self, keys, noreply=None):
        self._cmd("delete_many")
        for key in keys:
            self.items.pop(key, None)
        return True

    def flush_all(self, noreply=None):
        self._cmd("flush_all")
        self.items.clear()
        return True

    def close(self):
        pass


class Database:
    """The product row: version bumps on write; a write deletes the key after commit."""

    def __init__(self, memcached):
        self.version = 1
        self.reads = 0
        self.memcached = memcached
        self.during_read = None  # called inside the next read, after the row was read

    def write(self):
        self.version += 1
        self.memcached.delete(KEY)  # transaction.on_commit -> cache.invalidate

    def build(self):
        self.reads += 1
        page = cache.Page(f"v{self.version}".encode(), {"X-Product-Version": str(self.version)})
        hook, self.during_read = self.during_read, None
        if hook:
            hook()
        return page


class Clock:
    """A fake monotonic clock that the fake sleep moves forward."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []
        self.on_sleep = None

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


@pytest.fixture
def mc():
    return FakeMemcached()


@pytest.fixture
def db(mc):
    return Database(mc)


def read(mc, db, clock=None, errors=None):
    clock = clock or Clock()
    errors = [] if errors is None else errors
    return cache.leased_read(mc, KEY, db.build, errors.append, clock=clock, sleep=clock.sleep)


def version(result):
    page, status = result
    return page.headers["X-Product-Version"], status


# --- placeholders ----------------------------------------------------------------------------


def test_a_placeholder_carries_its_token_and_nothing_else_is_one():
    token = cache.new_token()
    assert cache.lease_token(cache.lease_value(token)) == token
    assert cache.lease_token((b"body", {})) is None  # a page
    assert cache.lease_token(None) is None
    assert cache.lease_token("some other text") is None
    assert cache.lease_token(cache.LEASE_PREFIX) is None  # no token: nobody's lease
    assert cache.lease_token(cache.lease_value(token).encode()) is None  # bytes are not ours


def test_tokens_are_unique():
    assert len({cache.new_token() for _ in range(1000)}) == 1000


def test_placeholder_and_page_survive_memcached_serialisation():
    """What the site stores goes through pickle_serde: a placeholder must come back a str
    (never mistaken for a page) and a page a 2-tuple."""
    for value in (cache.lease_value("ab12"), (b"<html>", {"X-Product-Version": "3"})):
        data, flags = pickle_serde.serialize(KEY, value)
        back = pickle_serde.deserialize(KEY, data, flags)
        assert back == value and type(back) is type(value)
    assert cache.lease_token(cache.lease_value("ab12")) == "ab12"


# --- reads -----------------------------------------------------------------------------------


def test_a_hit_is_one_get(mc, db):
    read(mc, db)
    mc.commands.clear()
    assert version(read(mc, db)) == ("1", "HIT")
    assert mc.commands == ["get"]
    assert db.reads == 1


def test_a_miss_takes_the_lease_reads_once_and_fills_the_key(mc, db):
    assert version(read(mc, db)) == ("1", "MISS")
    assert mc.commands == ["get", "add", "gets", "cas"]
    assert mc.items[KEY][0] == (b"v1", {"X-Product-Version": "1"})
    assert db.reads == 1


def test_stale_set_is_defeated(mc, db):
    """The reader read version 1; the writer commits 2 and deletes the key before the
    reader's set. The reader's page must not land in the cache."""
    db.during_read = db.write
    assert version(read(mc, db)) == ("1", "MISS")  # concurrent with the write: either is fine
    assert KEY not in mc.items
    assert version(read(mc, db)) == ("2", "MISS")
    assert version(read(mc, db)) == ("2", "HIT")


def test_the_stale_set_scenario_does_break_a_plain_set(mc, db, monkeypatch):
    """The same interleaving with cas acting as a plain set stores version 1 after the
    delete: the test above really exercises the race."""
    monkeypatch.setattr(mc, "cas", lambda key, value, cas, **kw: mc.set(key, value))
    db.during_read = db.write
    read(mc, db)
    assert version(read(mc, db)) == ("1", "HIT")  # stale: the row is at version 2


def test_a_newer_lease_wins_over_an_older_one(mc, db):
    """Writer deletes, then another reader takes a new lease, before the first one's cas:
    the first cas fails (EXISTS) and the second reader's page stays."""

    def write_then_other_reader_leases():
        db.write()
        mc.add(KEY, cache.lease_value("other"), expire=cache.LEASE_TTL)

    db.during_read = write_then_other_reader_leases
    read(mc, db)
    assert cache.lease_token(mc.items[KEY][0]) == "other"


def test_a_write_between_add_and_gets_means_no_lease(mc, db):
    real_add = mc.add

    def add_then_write(*args, **kwargs):
        stored = real_add(*args, **kwargs)
        db.write()
        return stored

    mc.add = add_then_write
    assert version(read(mc, db)) == ("2", "MISS")
    assert KEY not in mc.items and "cas" not in mc.commands


def test_the_herd_waits_for_the_holder(mc, db):
    """Another reader holds the lease; this one polls and gets its page, no db read."""
    mc.add(KEY, cache.lease_value("holder"), expire=cache.LEASE_TTL)
    clock = Clock()

    def holder_finishes(polls):
        if polls == 3:
            _, cas_id = mc.gets(KEY)
            mc.cas(KEY, (b"v1", {"X-Product-Version": "1"}), cas_id)

    clock.on_sleep = holder_finishes
    assert version(read(mc, db, clock)) == ("1", "HIT")
    assert db.reads == 0
    assert sum(clock.sleeps) < cache.LEASE_WAIT


def test_a_waiter_gives_up_reads_the_db_and_stores_nothing(mc, db):
    mc.add(KEY, cache.lease_value("stuck"), expire=cache.LEASE_TTL)
    clock = Clock()
    assert version(read(mc, db, clock)) == ("1", "MISS")
    assert db.reads == 1
    assert cache.LEASE_WAIT <= sum(clock.sleeps) <= cache.LEASE_WAIT + max(cache.LEASE_POLL)
    assert cache.lease_token(mc.items[KEY][0]) == "stuck"  # the holder's lease stands


def test_a_waiter_whose_lease_was_deleted_takes_its_own(mc, db):
    """The holder's placeholder was deleted by a write: the waiter leases and fills."""
    mc.add(KEY, cache.lease_value("holder"), expire=cache.LEASE_TTL)
    clock = Clock()
    clock.on_sleep = lambda polls: polls == 1 and db.write()
    assert version(read(mc, db, clock)) == ("2", "MISS")
    assert mc.items[KEY][0][1] == {"X-Product-Version": "2"}


def test_a_dead_server_means_postgresql_and_no_error(mc, db):
    mc.fail = True
    errors = []
    assert version(read(mc, db, errors=errors)) == ("1", "MISS")
    assert len(errors) == 1 and isinstance(errors[0], OSError)


def test_a_failed_cas_still_serves_the_page(mc, db):
    db.during_read = lambda: setattr(mc, "fail", True)
    errors = []
    assert version(read(mc, db, errors=errors)) == ("1", "MISS")
    assert db.reads == 1 and len(errors) == 1


def test_a_failing_build_frees_the_key_for_the_waiters(mc, db):
    class NotFound(Exception):
        pass

    def missing():
        raise NotFound

    with pytest.raises(NotFound):
        cache.leased_read(mc, KEY, missing, pytest.fail)
    assert KEY not in mc.items


# --- invalidation ----------------------------------------------------------------------------


def test_deletes_go_to_every_server_and_failures_are_replayed():
    servers = {f"192.168.56.1{i}:11211": FakeMemcached() for i in (1, 2, 3)}
    for server in servers.values():
        server.set(KEY, (b"old", {}))  # a copy everywhere, whatever the placement
    down = servers["192.168.56.12:11211"]
    down.fail = True
    replayer = cache.Replayer(servers.__getitem__, threaded=False)
    cache.broadcast_delete(servers, [KEY], replayer)
    assert [KEY in s.items for s in servers.values()] == [False, True, False]
    assert replayer.pending() == {"192.168.56.12:11211": {KEY}}
    assert replayer.replay() == 1  # still down: kept
    down.fail = False  # it answers again, with its pages: the delete reaches it
    assert replayer.replay() == 0
    assert KEY not in down.items and replayer.pending() == {}


def test_too_many_lost_deletes_become_one_flush(monkeypatch):
    monkeypatch.setattr(cache.Replayer, "MAX_KEYS", 3)
    server = FakeMemcached()
    server.set("unrelated", 1)
    replayer = cache.Replayer(lambda name: server, threaded=False)
    replayer.add("s:1", ["a", "b"])
    replayer.add("s:1", ["c", "d"])
    assert replayer.pending() == {"s:1": cache.Replayer.FLUSH}
    assert replayer.replay() == 0
    assert server.commands[-1] == "flush_all" and not server.items


def test_a_replay_keeps_deletes_added_meanwhile():
    server = FakeMemcached()
    replayer = cache.Replayer(lambda name: server, threaded=False)
    replayer.add("s:1", ["a"])
    real = server.delete_many

    def racing_delete_many(keys, noreply=None):
        replayer.add("s:1", ["b"])  # another write failed while this replay was running
        return real(keys, noreply)

    server.delete_many = racing_delete_many
    replayer.replay()
    assert replayer.pending() == {"s:1": {"b"}}


# --- a real memcached ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def memcached_server():
    binary = shutil.which("memcached")
    if binary is None:
        pytest.skip("memcached is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "8", "-u", "nobody"]
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.skip("could not start memcached")
                time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_leases_on_a_real_memcached(memcached_server):
    """Same client class and serde as the site: the race is lost by the stale reader."""
    client = Client(memcached_server, serde=pickle_serde, default_noreply=False)
    client.delete(KEY)
    db = Database(client)
    db.during_read = db.write
    assert version(read(client, db)) == ("1", "MISS")
    assert client.get(KEY) is None
    assert version(read(client, db)) == ("2", "MISS")
    assert version(read(client, db)) == ("2", "HIT")
    client.set(KEY, cache.lease_value("another reader"), expire=cache.LEASE_TTL)
    clock = Clock()
    assert version(read(client, db, clock)) == ("2", "MISS")  # waited, then PostgreSQL
    assert sum(clock.sleeps) >= cache.LEASE_WAIT
    client.close()


# --- the site's client: timeouts kept by the kernel -------------------------------------------


def test_the_site_client_is_blocking_with_kernel_timeouts(memcached_server):
    host, port = memcached_server.split(":")
    client = cache.KernelTimeoutClient((host, int(port)), timeout=0.25, serde=pickle_serde)
    client.set(KEY, ("body", {}), noreply=False)
    assert client.get(KEY) == ("body", {})
    assert client.sock.gettimeout() is None  # no poll() before each send and recv
    limit = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
    seconds, microseconds = struct.unpack("ll", limit)
    assert seconds + microseconds / 1e6 == pytest.approx(0.25, abs=0.01)  # kernel ticks
    client.close()


def hung(signum, frame):
    raise AssertionError("the get to a silent server did not time out")


def test_a_server_that_never_answers_fails_the_get_in_time():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the kernel; nothing is ever answered
        client = cache.KernelTimeoutClient(silent.getsockname(), timeout=0.2, connect_timeout=1)
        started = time.monotonic()
        signal.signal(signal.SIGALRM, hung)
        signal.alarm(5)  # without the kernel timeout the get would wait forever
        try:
            with pytest.raises(OSError):
                client.get(KEY)
        finally:
            signal.alarm(0)
        assert 0.15 < time.monotonic() - started < 2
        assert client.sock is None  # closed: a late answer can never be read as the next one
