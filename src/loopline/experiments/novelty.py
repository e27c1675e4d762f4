"""Novelty: does the lift fade as units get used to the treatment?

A new model often wins at first because it is new (users click what they have
not seen before) and the win decays. The report therefore splits each
example by its *exposure age*, the time since its unit's first decision in
the experiment, into the buckets of `AGE_BUCKETS`, and computes the lift in
each bucket (`loopline.experiments.statistics.compare`).

`trend` tests whether the lift declines with age: a weighted least-squares
line through the buckets' lifts against the bucket's index (0, 1, 2, ...:
the buckets grow roughly geometrically, so the index is close to log age),
each bucket weighted by 1 / the variance of its lift, which is known, so the
slope's standard error is sqrt(1 / sum of w (x - mean x)^2) and the test is a
z test. The p-value is one-sided: small when the slope is negative beyond
chance (a decaying novelty effect).

>>> t = trend([0.08, 0.05, 0.03, 0.01], [0.0001, 0.0001, 0.0001, 0.0001])
>>> round(t.slope, 4), round(t.standard_error, 4), t.p_value < 0.001
(-0.023, 0.0045, True)
>>> bucket_of(90 * 60_000)
'1h-6h'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["AGE_BUCKETS", "Trend", "bucket_of", "trend"]

_H = 3_600_000
AGE_BUCKETS: tuple[tuple[str, int], ...] = (
    ("0-1h", 0),
    ("1h-6h", _H),
    ("6h-1d", 6 * _H),
    ("1d-3d", 24 * _H),
    ("3d-7d", 72 * _H),
    ("7d-14d", 168 * _H),
    ("14d+", 336 * _H),
)
"""(name, lower bound in ms) of each exposure-age bucket; a bucket ends where the next starts."""


def bucket_of(age_ms: int) -> str:
    """The name of the bucket of an exposure age of `age_ms` milliseconds."""
    name = AGE_BUCKETS[0][0]
    for bucket, low in AGE_BUCKETS:
        if age_ms >= low:
            name = bucket
    return name


@dataclass(frozen=True, slots=True)
class Trend:
    """The weighted slope of lift per age bucket, its standard error, and the one-sided
    p-value of "the lift declines"."""

    slope: float
    standard_error: float
    p_value: float
    buckets: int


def trend(lifts: Sequence[float], variances: Sequence[float]) -> Trend:
    """The declining-trend test of `lifts` (in bucket order) with their `variances`.

    Buckets whose lift or variance is not a positive finite number are left out;
    fewer than three buckets leave nothing to test (NaN).
    """
    y = np.asarray(lifts, dtype=float)
    v = np.asarray(variances, dtype=float)
    x = np.arange(len(y), dtype=float)
    keep = np.isfinite(y) & np.isfinite(v) & (v > 0)
    x, y, w = x[keep], y[keep], 1.0 / v[keep]
    if len(y) < 3:
        return Trend(math.nan, math.nan, math.nan, len(y))
    xm = float(np.sum(w * x) / np.sum(w))
    ym = float(np.sum(w * y) / np.sum(w))
    sxx = float(np.sum(w * (x - xm) ** 2))
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    se = math.sqrt(1.0 / sxx)
    return Trend(slope, se, float(special.ndtr(slope / se)), len(y))
