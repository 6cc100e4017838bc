"""The real lab, brought up once per test session and taken down at the end.

Tests that need it ask for the ``lab`` fixture (a Target on the local lab). Tests that need a
different topology (2 or 4 app servers) ask ``lab_manager.use(path)``; the next test that asks
for ``lab`` gets the default topology back.
"""

from __future__ import annotations

import os

import pytest

from lab import control, health, lifecycle, topology
from lab.targets import LocalTarget


class LabManager:
    def __init__(self):
        self.current: str | None = None
        self.sickness: str | None = None

    def use(self, path=topology.DEFAULT_PATH, cache_mode: str = "leases") -> LocalTarget:
        """The lab of this topology, in this cache mode: brought up, or switched."""
        topo = topology.load(path)
        if self.current != str(topo.path):
            lifecycle.up(topo, cache_mode=cache_mode, say=lambda *a, **k: None,
                         test_hooks=True)
            self.current, self.sickness = str(topo.path), sickness(LocalTarget(topo))
        if self.sickness:  # fail fast and say why, not let every test time out
            pytest.fail(self.sickness, pytrace=False)
        target = LocalTarget(topo)
        if target.cache_mode() != cache_mode:
            control.switch_cache(target, cache_mode, say=lambda *a, **k: None)
        return target

    def forget(self) -> None:
        """The lab was taken down by a test: the next use brings it up again."""
        self.current = None


def sickness(target: LocalTarget) -> str | None:
    """What is wrong with a lab that just came up, or None if every node is healthy."""
    sick = [node for node in health.check(target) if not node.healthy]
    if not sick:
        return None
    return "the lab came up unhealthy: " + "; ".join(
        f"{node.name}: {node.services}" for node in sick)


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
