"""catalogue.cache: key names and key placement (pure, no memcached needed)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django_site"))

from catalogue import cache  # noqa: E402
from pymemcache.client.rendezvous import RendezvousHash  # noqa: E402

SERVERS = ["192.168.56.11:11211", "192.168.56.12:11211", "192.168.56.13:11211"]


def test_keys_are_versioned_and_distinct():
    assert cache.product_key(42) == f"lab:v{cache.SCHEMA}:product:42"
    assert cache.category_key(42) == f"lab:v{cache.SCHEMA}:category:42"
    assert cache.product_key(42) != cache.category_key(42)


def test_keys_accept_ids_from_urls_and_forms():
    assert cache.product_key("7") == cache.product_key(7)
    with pytest.raises(ValueError):
        cache.product_key("7; flush_all")


def test_keys_are_valid_memcached_keys():
    for key in (cache.product_key(2**63 - 1), cache.category_key(1)):
        assert len(key) <= 250 and all(32 < ord(char) < 127 for char in key)


def test_memcached_sees_the_key_verbatim():
    assert cache.memcached_key("lab:v1:product:1", "ignored", 9) == "lab:v1:product:1"


def test_memoised_placement_matches_pymemcache():
    memo, plain = cache.MemoRendezvousHash(), RendezvousHash()
    for server in SERVERS:
        memo.add_node(server)
        plain.add_node(server)
    keys = [cache.product_key(i) for i in range(1, 200)]
    assert [memo.get_node(k) for k in keys] == [plain.get_node(k) for k in keys]
    assert len({memo.get_node(k) for k in keys}) == len(SERVERS)  # spread over every server


def test_placement_follows_a_server_leaving_and_coming_back():
    memo = cache.MemoRendezvousHash()
    for server in SERVERS:
        memo.add_node(server)
    key = cache.product_key(1)
    owner = memo.get_node(key)
    memo.remove_node(owner)
    assert memo.get_node(key) not in (owner, None)
    memo.add_node(owner)
    assert memo.get_node(key) == owner


def test_no_server_is_not_remembered():
    memo = cache.MemoRendezvousHash()
    assert memo.get_node("k") is None
    memo.add_node(SERVERS[0])
    assert memo.get_node("k") == SERVERS[0]


def test_every_cache_mode_has_a_behaviour():
    from labsite.env import CACHE_MODES

    assert set(cache.MODES) == set(CACHE_MODES)


def test_the_mode_table():
    assert cache.MODES["off"].alias is None
    assert cache.MODES["local"].alias == "local"  # this node's memcached only
    assert cache.MODES["shared"].alias == cache.MODES["leases"].alias == "default"
    assert [name for name, mode in cache.MODES.items() if mode.leases] == ["leases"]


@pytest.mark.parametrize(
    ("header", "enabled", "ms"),
    [
        ("1500", True, 1500),
        (" 20 ", True, 20),
        ("0", True, 0),
        ("5000", True, 5000),
        ("5001", True, 0),  # above the cap: ignored, not clamped
        ("-5", True, 0),
        ("1.5", True, 0),
        ("abc", True, 0),
        ("\uff11\uff12", True, 0),  # fullwidth digits: isdigit() but not a number to us
        (None, True, 0),
        ("1500", False, 0),  # hooks off: the header means nothing
    ],
)
def test_the_delay_hook_header(header, enabled, ms):
    assert cache.set_delay_ms(header, enabled) == ms
