"""The real lab, brought up once per test session and taken down at the end.

Tests that need it ask for the ``lab`` fixture (a Target on the local lab). Tests that need a
different topology (2 or 4 app servers) ask ``lab_manager.use(path)``; the next test that asks
for ``lab`` gets the default topology back.
"""

from __future__ import annotations

import os

import pytest

from lab import lifecycle, topology
from lab.targets import LocalTarget


class LabManager:
    def __init__(self):
        self.current: str | None = None
        self.cache_mode = "leases"

    def use(self, path=topology.DEFAULT_PATH, cache_mode: str = "leases") -> LocalTarget:
        topo = topology.load(path)
        key = f"{topo.path}:{cache_mode}"
        if self.current != key:
            lifecycle.up(topo, cache_mode=cache_mode, say=lambda *a, **k: None)
            self.current = key
        return LocalTarget(topo)

    def forget(self) -> None:
        """The lab was taken down by a test: the next use brings it up again."""
        self.current = None


@pytest.fixture(scope="session")
def lab_manager():
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces): run them as root")
    manager = LabManager()
    yield manager
    lifecycle.down(say=lambda *a, **k: None)


@pytest.fixture
def lab(lab_manager) -> LocalTarget:
    return lab_manager.use()
