"""Settings for the lab site: everything deployment-specific comes from the environment.

See labsite/env.py for the variables; a missing one raises ImproperlyConfigured naming it.
"""

import os
from pathlib import Path

from labsite import env

LAB = env.read(os.environ)
BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = LAB.secret_key
DEBUG = False
ALLOWED_HOSTS = LAB.allowed_hosts
LAB_NODE = LAB.node
LAB_CACHE_MODE = LAB.cache_mode
LAB_TEST_HOOKS = LAB.test_hooks  # X-Lab-Delay-Set-Ms is obeyed only when this is on

INSTALLED_APPS = ["catalogue"]

# Minimal on purpose: the framework floor is measured. No sessions, auth, admin or messages.
MIDDLEWARE = [
    "labsite.middleware.served_by",
    "labsite.middleware.content_length",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labsite.urls"
WSGI_APPLICATION = "labsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        **LAB.db,
        "CONN_MAX_AGE": 60,  # keep the connection between requests
        "CONN_HEALTH_CHECKS": True,  # but notice one the server dropped
        "OPTIONS": {"connect_timeout": 5},
    }
}

# Fail fast on a dead memcached instead of blocking the request; the site then reads
# PostgreSQL (catalogue/cache.py). Keys are used verbatim (KEY_FUNCTION) so the lab's
# tools can find an entry on the wire with the name from catalogue.cache.product_key().
_MEMCACHED = {
    "BACKEND": "catalogue.cache.MemcachedCache",
    "KEY_FUNCTION": "catalogue.cache.memcached_key",
    "OPTIONS": {"connect_timeout": 0.5, "timeout": 0.5, "no_delay": True},
}
CACHES = {
    "default": {**_MEMCACHED, "LOCATION": LAB.memcached},  # one pool over every app server
    "local": {**_MEMCACHED, "LOCATION": [LAB.memcached_local]},  # this node's only
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_I18N = False
USE_TZ = True
TIME_ZONE = "UTC"

# Everything at WARNING and above goes to stderr: Apache's error log under mod_wsgi.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
