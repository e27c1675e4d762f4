"""Latency per arm: a histogram of log-spaced buckets, its quantiles, and an anytime interval.

A decision's latency (ms) falls in bucket ``floor(log(ms / FLOOR_MS) / log(RATIO))``:
buckets 5% wide from 0.01 ms to over a minute, so a quantile read from the
histogram is within 2.5% of the true one, and the histograms of partitions
add up. The watcher keeps one per (experiment, arm), as a dict of the
buckets that are not empty.

`quantile_interval` gives an anytime-valid interval for a quantile: the
share of decisions slower than a latency is a proportion, and its
confidence sequence (`loopline.experiments.sequential`) at the quantile's
level turns into a range of levels whose quantiles bound the true one.

>>> h: dict[int, int] = {}
>>> for i in range(1, 1001):
...     add(h, (i / 10) ** 2)   # 0.01 ms to 10 s, p99 9,801 ms
>>> round(quantile(h, 0.99))
9682
>>> [round(x) for x in quantile_interval(h, 0.99, alpha=0.05)]
[9682, 10166]
"""

from __future__ import annotations

import math

from loopline.experiments.sequential import confidence_sequence

__all__ = ["FLOOR_MS", "RATIO", "add", "bucket", "quantile", "quantile_interval"]

FLOOR_MS = 0.01
RATIO = 1.05
_LOG_RATIO = math.log(RATIO)
_TOP = 400  # 0.01 ms * 1.05 ** 400: about 3 days; slower decisions share the top bucket


def bucket(ms: float) -> int:
    """The bucket of a latency of `ms` milliseconds."""
    if not ms > FLOOR_MS:
        return 0
    return min(int(math.log(ms / FLOOR_MS) / _LOG_RATIO), _TOP)


def add(histogram: dict[int, int], ms: float) -> None:
    """Count one decision of latency `ms` in `histogram`."""
    b = bucket(ms)
    histogram[b] = histogram.get(b, 0) + 1


def quantile(histogram: dict[int, int], level: float) -> float:
    """The latency (ms) below which `level` of the decisions fell (a bucket's geometric middle)."""
    n = sum(histogram.values())
    if not n:
        return math.nan
    rank, seen = max(level, 0.0) * n, 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= rank:
            return FLOOR_MS * RATIO ** (b + 0.5)
    return FLOOR_MS * RATIO ** (max(histogram) + 0.5)


def quantile_interval(
    histogram: dict[int, int], level: float, *, alpha: float
) -> tuple[float, float]:
    """An anytime-valid 1 - `alpha` interval for the `level` quantile of the latency."""
    n = sum(histogram.values())
    _, width = confidence_sequence(0.0, level * (1 - level) / n, n, alpha) if n else (0, 1.0)
    return quantile(histogram, level - width), quantile(histogram, min(level + width, 1.0))
