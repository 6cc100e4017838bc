"""A record of what the lab made, so 'fab down' removes exactly that and nothing else.

Each resource is recorded *before* it is made: a crash half-way leaves a record that
covers everything that might exist, and removal tolerates what is not there.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab import paths


class Record:
    KINDS = ("route", "bridge", "namespace", "link")

    def __init__(self, path: Path = paths.RECORD):
        self.path = path
        self.items: dict[str, list[str]] = {kind: [] for kind in self.KINDS}
        if path.exists():
            try:
                saved = json.loads(path.read_text())
                for kind in self.KINDS:
                    self.items[kind] = list(saved.get(kind, []))
            except (OSError, ValueError):
                pass  # a torn record: down still sweeps the lab's names from the topology

    def exists(self) -> bool:
        return self.path.exists()

    def add(self, kind: str, value: str) -> None:
        if value not in self.items[kind]:
            self.items[kind].append(value)
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.items, indent=1))
        tmp.replace(self.path)

    def get(self, kind: str) -> list[str]:
        return list(self.items[kind])
