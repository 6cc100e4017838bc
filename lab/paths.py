"""Where the local lab keeps things. Everything under STATE is made by 'fab up' and removed
by 'fab down'; the venv is installed software (make install) and stays."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVISION = ROOT / "provision"
CAPTURES = ROOT / "captures"

# Outside the repo on purpose: the daemons drop to unprivileged users (postgres, www-data,
# nobody) that cannot read a checkout under a private home or temp directory.
STATE = Path("/var/lib/django-lab")
NODES = STATE / "nodes"
SECRETS = STATE / "secrets.env"
RECORD = STATE / "made.json"        # every resource 'fab up' made, written before making it
LAB_SETTINGS = STATE / "settings.json"  # choices made at 'fab up' (cache mode ...)

# The tools run from the lab's venv (made by 'make install'); the app servers use the same one.
VENV = Path(sys.prefix)
