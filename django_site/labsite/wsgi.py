"""WSGI entry point for Apache/mod_wsgi: django_site/labsite/wsgi.py.

The settings read os.environ, so the variables must be in Apache's own environment
(e.g. its envvars file); mod_wsgi's SetEnv only reaches the per-request environ.
"""

import os
import sys
from pathlib import Path

# Make django_site/ importable without relying on the server's python-path option.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
