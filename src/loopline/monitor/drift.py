"""Drift: how far a served sample has moved from a version's training profile, bin by bin.

The served values are counted in the training profile's own bins
(`loopline.models.histograms.Histogram.count`), then compared with the
training counts. Three measures, each equal to the reference implementation
on the same bins (tests/monitor/test_drift.py checks them to 1e-6):

- `psi`, the population stability index ``sum((e - a) * ln(e / a))`` over the
  bins' shares, natural log, as Evidently computes it: bins empty on both
  sides are left out, and an empty bin of one side takes the share
  `EPSILON` (0.0001), or its side's smallest non-zero share / 1e6 when that
  is smaller than `EPSILON`; shares are not renormalised after. PSI above 0.25
  is the usual "significant shift".
- `jensen_shannon`, the Jensen-Shannon **distance** (the square root of the
  divergence), natural log unless `base` is given: exactly
  `scipy.spatial.distance.jensenshannon` of the two count vectors (Evidently's
  ``jensenshannon`` test calls it on the shares). No epsilon: it is finite
  with empty bins. Between 0 and sqrt(ln 2) ~ 0.8326 (1 with ``base=2``).
- `wasserstein`, the first Wasserstein (earth mover's) distance for numbers,
  between the two histograms with each bin's mass at one point (`bin_points`:
  an inner bin at its middle, the open end bins at the training minimum and
  maximum): exactly ``scipy.stats.wasserstein_distance(points, points,
  expected, actual)``. In the feature's own unit; mass beyond the training
  range counts as sitting at its edge, so a far outlier moves it no more than
  a near one (PSI and Jensen-Shannon see the end bins fill).

>>> psi([50, 50], [50, 50]), jensen_shannon([50, 50], [50, 50])
(0.0, 0.0)
>>> round(psi([90, 10], [50, 50]), 6), round(jensen_shannon([90, 10], [50, 50]), 6)
(0.87889, 0.318982)
>>> round(psi([10, 0], [9, 1]), 6)  # the empty bin's share is taken as 0.0001
0.700621
>>> wasserstein([0.0, 1.0, 2.0], [1, 1, 0], [0, 1, 1])
1.0
>>> coverage([3, 0, None, float("nan"), 7], default=0)
0.4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from loopline.models.histograms import Histogram
from loopline.models.profiles import FeatureProfile

__all__ = [
    "EPSILON",
    "FeatureDrift",
    "bin_points",
    "coverage",
    "feature_drift",
    "jensen_shannon",
    "psi",
    "wasserstein",
]

EPSILON = 0.0001
"""The share an empty bin takes in `psi`, as in Evidently (less when a side has a smaller share)."""


def _counts(counts: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    if array.ndim != 1 or np.any(array < 0) or not np.all(np.isfinite(array)):
        raise ValueError(f"{what} counts must be a list of finite numbers >= 0, not {counts!r}")
    return array


def _pair(expected: Any, actual: Any) -> tuple[np.ndarray, np.ndarray]:
    e, a = _counts(expected, "expected"), _counts(actual, "actual")
    if e.shape != a.shape:
        raise ValueError(
            f"expected and actual must be counted in the same bins: {e.size} bins against "
            f"{a.size}; count the served values with the profile's Histogram.count"
        )
    return e, a


def _filled(shares: np.ndarray) -> np.ndarray:
    """`shares` with each zero replaced as Evidently does (see the module docstring)."""
    smallest = shares[shares > 0].min()
    fill = smallest / 10**6 if smallest <= EPSILON else EPSILON
    return np.where(shares == 0, fill, shares)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of `actual` counts against `expected` counts, on the
    same bins; NaN when either side has no values."""
    e, a = _pair(expected, actual)
    if e.sum() == 0 or a.sum() == 0:
        return math.nan
    seen = (e > 0) | (a > 0)
    p, q = _filled(e[seen] / e.sum()), _filled(a[seen] / a.sum())
    return float(np.sum((p - q) * np.log(p / q)))


def jensen_shannon(
    expected: Sequence[float], actual: Sequence[float], base: float | None = None
) -> float:
    """The Jensen-Shannon distance of two count vectors on the same bins (as scipy's
    ``jensenshannon``: natural log, or `base`); NaN when either side has no values."""
    e, a = _pair(expected, actual)
    if e.sum() == 0 or a.sum() == 0:
        return math.nan
    p, q = e / e.sum(), a / a.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    divergence = float(np.sum(left + right)) / 2
    if base is not None:
        divergence /= math.log(base)
    return math.sqrt(max(divergence, 0.0))


def wasserstein(
    points: Sequence[float], expected: Sequence[float], actual: Sequence[float]
) -> float:
    """The first Wasserstein distance between `expected` and `actual` counts at `points`
    (increasing): ``scipy.stats.wasserstein_distance(points, points, expected, actual)``."""
    e, a = _pair(expected, actual)
    x = np.asarray(points, dtype=np.float64)
    if x.shape != e.shape:
        raise ValueError(f"need one point per bin: {x.size} points for {e.size} bins")
    if np.any(np.diff(x) < 0):
        raise ValueError(f"the points must be increasing, not {list(x)}")
    if e.sum() == 0 or a.sum() == 0:
        return math.nan
    gap = np.cumsum(e)[:-1] / e.sum() - np.cumsum(a)[:-1] / a.sum()
    return float(np.sum(np.abs(gap) * np.diff(x)))


def bin_points(histogram: Histogram) -> list[float]:
    """Where each bin's mass sits for `wasserstein`: inner bins at their middle, the open
    ends at the training minimum and maximum (the outer edges).

    >>> bin_points(Histogram(kind="number", counts=[0, 3, 1, 0], edges=[0.0, 1.0, 4.0]))
    [0.0, 0.5, 2.5, 4.0]
    """
    if not histogram.numeric:
        raise ValueError("a Wasserstein distance needs numbers; this histogram holds categories")
    e = histogram.edges
    if not e:
        return [0.0]
    return [e[0], *((e[i - 1] + e[i]) / 2 for i in range(1, len(e))), e[-1]]


def _numbers(values: Any) -> np.ndarray | None:
    """`values` as float64 with NaN for the missing ones, when they are numbers (else None)."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        kind = values.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            return values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return None
    if isinstance(values, np.ndarray):
        return values.astype(np.float64) if values.dtype.kind in "fiub" else None
    if all(v is None or isinstance(v, int | float) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return None


def coverage(values: Sequence[Any] | np.ndarray | pa.Array, default: Any = None) -> float:
    """The share of `values` that are neither missing (None, NaN) nor `default` (the
    feature's declared default: 0 for a count); NaN for no values at all."""
    total = len(values)
    if not total:
        return math.nan
    floats = _numbers(values)
    if floats is not None:
        keep = ~np.isnan(floats)
        if isinstance(default, int | float):
            keep &= floats != float(default)
        return float(keep.sum() / total)
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_pylist()
    present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    covered = len(present) if default is None else sum(1 for v in present if v != default)
    return covered / total


class FeatureDrift(msgspec.Struct, frozen=True, kw_only=True):
    """A served sample of one feature against its training profile."""

    name: str
    rows: int
    coverage: float  # served
    training_coverage: float
    mean: float | None  # served, numbers only
    counts: list[int]  # served, in the profile's bins
    psi: float
    jensen_shannon: float
    wasserstein: float | None  # numbers only


def feature_drift(
    profile: FeatureProfile, values: Sequence[Any] | np.ndarray | pa.Array
) -> FeatureDrift:
    """Coverage, mean and drift of served `values` of a feature against its `profile`.

    >>> import pyarrow as pa
    >>> from loopline.models.profiles import profile_features
    >>> trained = profile_features(pa.table({"n": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}), ["n"], {"n": 0})[0]
    >>> d = feature_drift(trained, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    >>> d.coverage, d.training_coverage, d.psi, d.jensen_shannon, d.wasserstein
    (0.9, 0.9, 0.0, 0.0, 0.0)
    >>> feature_drift(trained, [20, 30, None]).counts[-1]  # above the training range
    2
    """
    histogram = profile.histogram
    counts = histogram.count(values)
    served_mean = None
    floats = _numbers(values) if histogram.numeric else None
    if floats is not None:
        present = floats[~np.isnan(floats)]
        served_mean = float(present.mean()) if present.size else None
    total = len(values)
    return FeatureDrift(
        name=profile.name,
        rows=total,
        coverage=coverage(values, profile.default),
        training_coverage=profile.coverage,
        mean=served_mean,
        counts=counts,
        psi=psi(histogram.counts, counts),
        jensen_shannon=jensen_shannon(histogram.counts, counts),
        wasserstein=(
            wasserstein(bin_points(histogram), histogram.counts, counts)
            if histogram.numeric
            else None
        ),
    )
