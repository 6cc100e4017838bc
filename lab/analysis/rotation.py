"""Round-robin checks on the sequence of backends that upstream requests went to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import permutations

MAX_BACKENDS_TO_SEARCH = 8  # 7! cyclic orders to score; more backends use first appearance


@dataclass
class RotationBreak:
    position: int  # 1-based position in the upstream request sequence
    expected: str
    got: str
    frame: int  # capture frame of the request that broke the rotation


def first_appearance(sequence: list[str]) -> list[str]:
    return list(dict.fromkeys(sequence))


def infer_order(sequence: list[str]) -> list[str]:
    """The cyclic order of backends that explains the most consecutive pairs.

    Round-robin is a cycle that may start anywhere, so only the successor of each backend
    matters. Candidates are every cyclic order (first backend fixed); ties go to the order
    of first appearance, so a clean rotation reports the order in which it was seen.
    """
    seen = first_appearance(sequence)
    if len(seen) < 3 or len(seen) > MAX_BACKENDS_TO_SEARCH:
        return seen
    pairs = Counter(zip(sequence, sequence[1:], strict=False))
    best, best_score = seen, _score(seen, pairs)
    for rest in permutations(seen[1:]):
        candidate = [seen[0], *rest]
        score = _score(candidate, pairs)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _score(order: list[str], pairs: Counter) -> int:
    return sum(pairs[(a, b)] for a, b in zip(order, order[1:] + order[:1], strict=True))


def rotation_breaks(sequence: list[str], frames: list[int], order: list[str]
                    ) -> list[RotationBreak]:
    """Every place where a backend is not followed by the next one in ``order``."""
    successor = dict(zip(order, order[1:] + order[:1], strict=True))
    breaks = []
    for position in range(1, len(sequence)):
        expected = successor.get(sequence[position - 1], "?")
        if sequence[position] != expected:
            breaks.append(RotationBreak(position + 1, expected, sequence[position],
                                        frames[position]))
    return breaks


def spread(counts: dict[str, int]) -> int:
    """Most minus fewest requests per backend: 0 or 1 is balanced."""
    return max(counts.values()) - min(counts.values()) if counts else 0
