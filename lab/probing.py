"""Run lab.probe on a node (inside its namespace, or over SSH) and read its JSON answer."""

from __future__ import annotations

import json

from lab.errors import LabError
from lab.targets import Target
from lab.topology import Node


def probe(target: Target, node: Node, *args: str, extra_env: dict[str, str] | None = None):
    result = target.run(node, [*target.python(node), "-m", "lab.probe", *args],
                        extra_env=extra_env, timeout=60)
    if result.returncode != 0:
        problem = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"probe on {node.name} failed: {problem}; is the lab up? (fab status)")
    return json.loads(result.stdout)
