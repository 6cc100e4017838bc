"""Round-robin checks on the sequence of backends that upstream requests went to.

The sequence itself is never kept: ``UpstreamSequence`` reduces it, request by request, to
what the checks need: requests per backend (in order of first appearance), how often
each backend followed each other one, and where each such succession first happened.
Memory: a few entries per pair of backends.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import permutations

MAX_BACKENDS_TO_SEARCH = 8  # 7! cyclic orders to score; more backends use first appearance
FIRST_BREAKS = 10  # breaks kept (the first ones); all are counted

Pair = tuple[Hashable, Hashable]
Place = tuple[int, int]  # (1-based position in the sequence, frame)


@dataclass
class RotationBreak:
    position: int  # 1-based position in the upstream request sequence
    expected: str
    got: str
    frame: int  # capture frame of the request that broke the rotation


class UpstreamSequence:
    """The upstream sequence, reduced as it goes; backends are any hashable names.

    ``add`` runs once per upstream request, so it counts successions only: a backend's
    requests are the times something led to it (the first request is led by None).
    """

    def __init__(self) -> None:
        self.total = 0
        # (backend, next backend) -> times, in order of first occurrence; (None, first)
        self.led: dict[tuple[Hashable | None, Hashable], int] = {}
        self.first_places: dict[Pair, list[Place]] = {}  # where each pair first happened
        self.previous: Hashable | None = None

    def add(self, backend: Hashable, frame: int) -> None:
        self.total += 1
        pair = (self.previous, backend)
        self.previous = backend
        times = self.led[pair] = self.led.get(pair, 0) + 1
        if times <= FIRST_BREAKS and pair[0] is not None:
            self.first_places.setdefault(pair, []).append((self.total, frame))

    @property
    def counts(self) -> dict:
        """Backend -> requests, in order of first appearance."""
        counts: dict = {}
        for (_, backend), times in self.led.items():  # a new backend comes in a new pair
            counts[backend] = counts.get(backend, 0) + times
        return counts

    @property
    def successions(self) -> dict[Pair, int]:
        """(backend, next backend) -> times."""
        return {pair: times for pair, times in self.led.items() if pair[0] is not None}

    def renamed(self, name: Callable[[Hashable], str]) -> UpstreamSequence:
        """The same sequence with each backend replaced by ``name(backend)``.

        Two backends may get one name: their counts and successions add up.
        """
        result = UpstreamSequence()
        result.total = self.total
        for (a, b), count in self.led.items():
            pair = (None if a is None else name(a), name(b))
            result.led[pair] = result.led.get(pair, 0) + count
        for (a, b), places in self.first_places.items():
            merged = result.first_places.setdefault((name(a), name(b)), [])
            merged.extend(places)
            merged.sort()
            del merged[FIRST_BREAKS:]
        return result

    def first_appearance(self) -> list:
        return list(self.counts)


def infer_order(sequence: UpstreamSequence) -> list:
    """The cyclic order of backends that explains the most consecutive pairs.

    Round-robin is a cycle that may start anywhere, so only the successor of each backend
    matters. Candidates are every cyclic order (first backend fixed); ties go to the order
    of first appearance, so a clean rotation reports the order in which it was seen.
    """
    seen = sequence.first_appearance()
    if len(seen) < 3 or len(seen) > MAX_BACKENDS_TO_SEARCH:
        return seen
    pairs = sequence.successions
    best, best_score = seen, _score(seen, pairs)
    for rest in permutations(seen[1:]):
        candidate = [seen[0], *rest]
        score = _score(candidate, pairs)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _score(order: list, pairs: dict) -> int:
    return sum(pairs.get((a, b), 0) for a, b in zip(order, order[1:] + order[:1], strict=True))


def rotation_breaks(sequence: UpstreamSequence, order: list[str]
                    ) -> tuple[int, list[RotationBreak]]:
    """(number of breaks, the first ``FIRST_BREAKS`` of them): every place where a backend
    is not followed by the next one in ``order``."""
    successor = dict(zip(order, order[1:] + order[:1], strict=True))
    count = 0
    first: list[RotationBreak] = []
    for (previous, backend), times in sequence.successions.items():
        expected = successor.get(previous, "?")
        if backend != expected:
            count += times
            first += [RotationBreak(position, expected, backend, frame)
                      for position, frame in sequence.first_places[(previous, backend)]]
    first.sort(key=lambda brk: brk.position)
    return count, first[:FIRST_BREAKS]


def spread(counts: dict[str, int]) -> int:
    """Most minus fewest requests per backend: 0 or 1 is balanced."""
    return max(counts.values()) - min(counts.values()) if counts else 0
