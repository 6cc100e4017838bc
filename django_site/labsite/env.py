"""Read the site's configuration from the environment.

Pure functions over a mapping (os.environ in production, a dict in tests) so
settings.py stays a list of assignments and the parsing can be tested alone.
"""

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

CACHE_MODES = ("off", "local", "shared", "leases")


@dataclass(frozen=True)
class LabEnv:
    secret_key: str
    node: str
    allowed_hosts: list[str]
    db: dict
    memcached: list[str]
    memcached_local: str
    cache_mode: str
    test_hooks: bool = False


def required(environ, name, allow_empty=False):
    value = environ.get(name)
    if value is None or (not value.strip() and not allow_empty):
        raise ImproperlyConfigured(f"missing required environment variable {name}")
    return value.strip()


def csv(environ, name):
    items = [item.strip() for item in required(environ, name).split(",")]
    if not all(items):
        raise ImproperlyConfigured(f"{name} has an empty item: {environ[name]!r}")
    return items


def port(value, name):
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ImproperlyConfigured(f"{name} is not a TCP port: {value!r}")
    return int(value)


def address(value, name):
    """Check one memcached host:port; the name keeps the error pointing at the variable."""
    host, sep, number = value.rpartition(":")
    if not sep or not host:
        raise ImproperlyConfigured(f"{name} wants host:port, got {value!r}")
    port(number, name)
    return value


def choice(environ, name, choices, default):
    value = environ.get(name, "").strip() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def flag(environ, name):
    """An on/off switch: "1" on; unset, empty or "0" off; anything else is refused."""
    value = environ.get(name, "").strip()
    if value not in ("", "0", "1"):
        raise ImproperlyConfigured(f"{name} must be 0 or 1, got {value!r}")
    return value == "1"


def database(environ):
    return {
        "HOST": required(environ, "LAB_DB_HOST"),
        "PORT": port(environ.get("LAB_DB_PORT", "").strip() or "5432", "LAB_DB_PORT"),
        "NAME": required(environ, "LAB_DB_NAME"),
        "USER": required(environ, "LAB_DB_USER"),
        # May be set empty on purpose (trust auth), but must be set.
        "PASSWORD": required(environ, "LAB_DB_PASSWORD", allow_empty=True),
    }


def memcached(environ):
    pool = [address(item, "LAB_MEMCACHED") for item in csv(environ, "LAB_MEMCACHED")]
    local = address(required(environ, "LAB_MEMCACHED_LOCAL"), "LAB_MEMCACHED_LOCAL")
    if local not in pool:
        # Every app server's memcached is in the pool; anything else is a typo.
        raise ImproperlyConfigured(f"LAB_MEMCACHED_LOCAL {local} is not in LAB_MEMCACHED")
    return pool, local


def read(environ):
    """Parse everything, in the order a reader of the docs would set it."""
    secret_key = required(environ, "DJANGO_SECRET_KEY")
    node = required(environ, "LAB_NODE")
    allowed_hosts = csv(environ, "LAB_ALLOWED_HOSTS")
    db = database(environ)
    pool, local = memcached(environ)
    return LabEnv(
        secret_key=secret_key,
        node=node,
        allowed_hosts=allowed_hosts,
        db=db,
        memcached=pool,
        memcached_local=local,
        cache_mode=choice(environ, "LAB_CACHE_MODE", CACHE_MODES, default="leases"),
        # Only for the lab's tests: lets a request slow its cache set down (catalogue/cache.py).
        test_hooks=flag(environ, "LAB_TEST_HOOKS"),
    )
