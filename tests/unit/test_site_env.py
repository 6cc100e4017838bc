"""labsite.env: the site's settings as read from the environment (no Django setup needed)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django_site"))

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from labsite import env  # noqa: E402

GOOD = {
    "DJANGO_SECRET_KEY": "k" * 50,
    "LAB_NODE": "app2",
    "LAB_ALLOWED_HOSTS": "192.168.56.10, app2 ,192.168.56.12",
    "LAB_DB_HOST": "192.168.56.20",
    "LAB_DB_NAME": "lab",
    "LAB_DB_USER": "lab",
    "LAB_DB_PASSWORD": "secret",
    "LAB_MEMCACHED": "192.168.56.11:11211,192.168.56.12:11211,192.168.56.13:11211",
    "LAB_MEMCACHED_LOCAL": "192.168.56.12:11211",
}


def read(**changes):
    environ = {**GOOD, **changes}
    return env.read({name: value for name, value in environ.items() if value is not None})


def test_reads_a_complete_environment():
    lab = read()
    assert lab.node == "app2"
    assert lab.allowed_hosts == ["192.168.56.10", "app2", "192.168.56.12"]
    assert lab.db == {
        "HOST": "192.168.56.20",
        "PORT": 5432,
        "NAME": "lab",
        "USER": "lab",
        "PASSWORD": "secret",
    }
    assert lab.memcached == GOOD["LAB_MEMCACHED"].split(",")  # topology order kept
    assert lab.memcached_local == "192.168.56.12:11211"
    assert lab.cache_mode == "leases"  # the default: the mode without stale reads
    assert lab.test_hooks is False


@pytest.mark.parametrize(
    "name",
    [
        "DJANGO_SECRET_KEY",
        "LAB_NODE",
        "LAB_ALLOWED_HOSTS",
        "LAB_DB_HOST",
        "LAB_DB_NAME",
        "LAB_DB_USER",
        "LAB_DB_PASSWORD",
        "LAB_MEMCACHED",
        "LAB_MEMCACHED_LOCAL",
    ],
)
def test_a_missing_variable_is_named_in_one_line(name):
    with pytest.raises(ImproperlyConfigured) as error:
        read(**{name: None})
    assert str(error.value) == f"missing required environment variable {name}"


def test_blank_counts_as_missing_but_an_empty_password_is_allowed():
    with pytest.raises(ImproperlyConfigured, match="LAB_NODE"):
        read(LAB_NODE="  ")
    assert read(LAB_DB_PASSWORD="").db["PASSWORD"] == ""


@pytest.mark.parametrize("mode", env.CACHE_MODES)
def test_cache_modes(mode):
    assert read(LAB_CACHE_MODE=mode).cache_mode == mode


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"LAB_CACHE_MODE": "fast"}, "LAB_CACHE_MODE must be one of off, local, shared, leases"),
        ({"LAB_TEST_HOOKS": "yes"}, "LAB_TEST_HOOKS must be 0 or 1"),
        ({"LAB_DB_PORT": "54x"}, "LAB_DB_PORT is not a TCP port"),
        ({"LAB_DB_PORT": "70000"}, "LAB_DB_PORT is not a TCP port"),
        ({"LAB_MEMCACHED": "a:1,,b:2"}, "LAB_MEMCACHED has an empty item"),
        ({"LAB_MEMCACHED": "192.168.56.12"}, "LAB_MEMCACHED wants host:port"),
        ({"LAB_MEMCACHED_LOCAL": "192.168.56.14:11211"}, "is not in LAB_MEMCACHED"),
    ],
)
def test_bad_values_are_refused(changes, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        read(**changes)


def test_port_and_mode_defaults_can_be_overridden():
    lab = read(LAB_DB_PORT="55432", LAB_CACHE_MODE="local")
    assert (lab.db["PORT"], lab.cache_mode) == (55432, "local")


@pytest.mark.parametrize(("value", "on"), [("1", True), (" 1 ", True), ("0", False), ("", False)])
def test_test_hooks_switch(value, on):
    assert read(LAB_TEST_HOOKS=value).test_hooks is on
