"""Run lab.probe inside a node's namespace and read its JSON answer."""

from __future__ import annotations

import json
import subprocess

from lab import netns, paths
from lab.errors import LabError
from lab.topology import Node


def probe(node: Node, *args: str, env: dict[str, str] | None = None) -> object:
    argv = netns.in_node(node, [str(paths.VENV / "bin" / "python"), "-m", "lab.probe", *args])
    result = subprocess.run(argv, cwd=paths.ROOT, capture_output=True, text=True, env=env,
                            timeout=60)
    if result.returncode != 0:
        problem = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"probe in {node.name} failed: {problem}; is the lab up? (fab status)")
    return json.loads(result.stdout)
