"""Upstream response times per backend, in bounded memory.

Exact (nearest rank) while a backend has at most ``EXACT_LIMIT`` samples. Past that, an
HDR histogram (1 µs to an hour, 3 significant digits: within 0.1%) of fixed size: samples
are counted per histogram bucket in a dict (a few thousand entries at most, whatever the
number of samples; ~5x cheaper than ``record_value`` for each) and handed to
``HdrHistogram`` as (value, count) when a summary is asked for. Count and maximum stay
exact.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

EXACT_LIMIT = 8192
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
SUB_BUCKET_BITS = 11  # HdrHistogram's for 3 digits: values below 2048 are exact


@dataclass
class ResponseTimes:
    """Upstream response time: request's last byte to the response's first byte."""

    count: int
    p50_ms: float
    p90_ms: float
    max_ms: float


def percentile(values, share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, -(-len(values) * share // 1))  # ceil without floats drifting
    return values[int(rank) - 1]


def hdr_bucket(us: int) -> int:
    """The lowest value HdrHistogram (3 digits) files together with ``us``."""
    shift = us.bit_length() - SUB_BUCKET_BITS
    return us if shift <= 0 else us >> shift << shift


class Latencies:
    """The response times of one backend, in milliseconds."""

    def __init__(self, exact_limit: int = EXACT_LIMIT) -> None:
        self.exact_limit = exact_limit
        self.values = array("d")  # while exact
        self.buckets: dict[int, int] | None = None  # µs bucket -> samples, once too many
        self.count = 0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.count += 1
        if ms > self.max:
            self.max = ms
        if self.buckets is None:
            self.values.append(ms)
            if len(self.values) > self.exact_limit:
                self._to_buckets()
        else:
            us = round(ms * 1000)
            if us > HIGHEST_US:
                us = HIGHEST_US
            shift = us.bit_length() - SUB_BUCKET_BITS  # hdr_bucket(us), inline
            bucket = us >> shift << shift if shift > 0 else us
            self.buckets[bucket] = self.buckets.get(bucket, 0) + 1

    def merge(self, other: Latencies) -> None:
        for ms in other.values:
            self.add(ms)
        if other.buckets is not None:
            if self.buckets is None:
                self._to_buckets()
            for bucket, count in other.buckets.items():
                self.buckets[bucket] = self.buckets.get(bucket, 0) + count
            self.count += sum(other.buckets.values())
            self.max = max(self.max, other.max)

    def summary(self) -> ResponseTimes | None:
        if not self.count:
            return None
        if self.buckets is None:
            values = sorted(self.values)
            p50, p90 = percentile(values, 0.5), percentile(values, 0.9)
        else:
            from hdrh.histogram import HdrHistogram  # imported here: most runs do without

            histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
            for bucket, count in self.buckets.items():
                histogram.record_value(bucket, count)
            p50 = min(histogram.get_value_at_percentile(50) / 1000, self.max)
            p90 = min(histogram.get_value_at_percentile(90) / 1000, self.max)
        return ResponseTimes(self.count, round(p50, 3), round(p90, 3), round(self.max, 3))

    def _to_buckets(self) -> None:
        values, self.values = self.values, array("d")
        self.buckets = {}
        for ms in values:
            bucket = hdr_bucket(min(round(ms * 1000), HIGHEST_US))
            self.buckets[bucket] = self.buckets.get(bucket, 0) + 1
