"""Latency percentiles in bounded memory: log-spaced buckets (the DDSketch idea).

A value ``x > 0`` goes to bucket ``ceil(log(x) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)`` for the relative accuracy ``a`` (1%); a bucket
reports ``2 * gamma**i / (gamma + 1)``, within ``a`` of every value in it.
Values at or below `MIN` (1 microsecond, in ms) share bucket 0 reported as 0.
A window holds a few hundred buckets whatever its traffic, and buckets add,
so the same percentile comes from any split of the same values.

A percentile is the nearest rank: the bucket of the ``ceil(q * n)``-th
smallest value.

>>> s = LatencySketch()
>>> for ms in (1.0, 2.0, 3.0, 4.0, 100.0):
...     s.add(ms)
>>> [round(s.quantile(q), 1) for q in (0.5, 0.99)]
[3.0, 99.7]
>>> abs(s.quantile(0.5) - 3.0) / 3.0 <= ACCURACY
True
"""

from __future__ import annotations

import math

__all__ = ["ACCURACY", "LatencySketch", "bucket", "value_of"]

ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MIN = 0.001


def bucket(ms: float) -> int:
    """The bucket of a latency of `ms` milliseconds (0 for `MIN` and below)."""
    if not ms > MIN:
        return 0
    return max(1, math.ceil(math.log(ms / MIN) / _LOG_GAMMA))


def value_of(index: int) -> float:
    """What bucket `index` reports: within `ACCURACY` of every value in it."""
    if index <= 0:
        return 0.0
    return MIN * 2 * GAMMA**index / (GAMMA + 1)


class LatencySketch:
    """Counts per bucket (`counts`: bucket -> count; plain data for the changelog)."""

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts if counts is not None else {}

    def add(self, ms: float) -> None:
        i = bucket(ms)
        self.counts[i] = self.counts.get(i, 0) + 1

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        """The nearest-rank `q` quantile (0 < q <= 1); None for no values."""
        n = self.n
        if not n:
            return None
        rank = max(1, math.ceil(q * n))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return value_of(i)
        return value_of(max(self.counts))
