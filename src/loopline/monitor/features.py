"""One feature as served, counted against its training profile: coverage, mean and bins.

A `FeatureCounter` is made once per (model version, feature) from the
version's `FeatureProfile` (or from nothing, for a version without a
profile: then coverage counts only missing values, and there are no bins).
Its `add` counts one served value into a window's plain `FeatureCounts`, in
the profile's own bins (`loopline.models.histograms.Histogram`: the same
bins as ``Histogram.count``), so drift (`loopline.monitor.drift`) compares
like with like; `stats` turns the counts into the record's `FeatureStats`.

>>> import pyarrow as pa
>>> from loopline.models.profiles import profile_features
>>> trained = profile_features(pa.table({"n": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}), ["n"], {"n": 0})[0]
>>> counter, counts = FeatureCounter("n", trained), FeatureCounts()
>>> for v in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]:
...     counter.add(counts, v)
>>> s = counter.stats(counts, rows=10)
>>> s.coverage, s.training_coverage, s.mean, s.psi, s.wasserstein
(0.9, 0.9, 4.5, 0.0, 0.0)
>>> counts.bins == s.bins == trained.histogram.count([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
True
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import msgspec

from loopline.models.profiles import FeatureProfile
from loopline.monitor.drift import bin_points, jensen_shannon, psi, wasserstein
from loopline.monitor.records import FeatureStats

__all__ = ["FeatureCounter", "FeatureCounts", "apply", "number_bin"]


def apply(counts: FeatureCounts, seen: tuple[int, float | None, int] | None, width: int) -> None:
    """Add one classified value (`FeatureCounter.classify`) to `counts` (`width` bins)."""
    if seen is None:
        return
    counts.present += 1
    counts.covered += seen[0]
    if seen[1] is not None:
        counts.numbers += 1
        counts.total += seen[1]
    if seen[2] >= 0:
        if counts.bins is None:
            counts.bins = [0] * width
        counts.bins[seen[2]] += 1


def number_bin(edges: list[float], x: float) -> int:
    """The bin of number `x` in a number histogram of `edges` (as ``Histogram.count``).

    >>> [number_bin([1.0, 2.5, 4.0], x) for x in (0.0, 1.0, 2.5, 4.0, 9.0)]
    [0, 1, 2, 2, 3]
    """
    if not edges:
        return 0
    if x == edges[-1]:
        return len(edges) - 1  # the last inner bin is closed: the training maximum is in it
    return bisect.bisect_right(edges, x)


class FeatureCounts(msgspec.Struct):
    """A window's counts of one feature (plain data: it goes to the changelog)."""

    present: int = 0  # neither None nor NaN
    covered: int = 0  # present and not the default
    numbers: int = 0
    total: float = 0.0
    bins: list[int] | None = None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class FeatureCounter:
    """Counts served values of feature `name` in the bins of `profile` (see the module);
    without a profile, `default` is the feature's declared default for coverage."""

    def __init__(self, name: str, profile: FeatureProfile | None, default: Any = None) -> None:
        self.name, self.profile = name, profile
        self.default: Any = profile.default if profile is not None else default
        h = profile.histogram if profile is not None else None
        self.histogram = h
        self.numeric = h.numeric if h is not None else None
        self.edges = h.edges if h is not None else []
        self.index = {c: i for i, c in enumerate(h.categories)} if h is not None else {}
        self.width = len(h.counts) if h is not None else 0

    def classify(self, value: Any) -> tuple[int, float | None, int] | None:
        """What one served `value` adds: (covered 0/1, its number or None, its bin or -1);
        None for a missing value (None or NaN). Done once per value, added to each window."""
        if value is None or (value.__class__ is float and value != value):
            return None
        number = value if isinstance(value, int | float) else None
        default = self.default
        if default is None:
            covered = 1
        elif number is not None and self.numeric:
            covered = 0 if value == default else 1
        else:
            covered = 0 if str(value) == default else 1
        if self.histogram is None:
            at = -1
        elif self.numeric:
            # text served for a number trained: missing for the bins
            at = -1 if number is None else number_bin(self.edges, float(number))
        else:
            text = value if value.__class__ is str else str(value)
            at = self.index.get(text, self.width - 1)
        return covered, (None if number is None else float(number)), at

    def add(self, counts: FeatureCounts, value: Any) -> None:
        """Count one served `value` (None or NaN: missing)."""
        apply(counts, self.classify(value), self.width)

    def stats(self, counts: FeatureCounts, rows: int) -> FeatureStats:
        """The record of the window: `rows` candidates were served (a missing key is missing)."""
        p, h = self.profile, self.histogram
        out: dict[str, Any] = {}
        if p is not None and h is not None:
            served = counts.bins or [0] * self.width
            out = {
                "bins": served,
                "bins_id": h.bins_id(),
                "training_coverage": p.coverage,
                "psi": _finite(psi(h.counts, served)),
                "jensen_shannon": _finite(jensen_shannon(h.counts, served)),
                "wasserstein": (
                    _finite(wasserstein(bin_points(h), h.counts, served)) if h.numeric else None
                ),
            }
        return FeatureStats(
            name=self.name,
            rows=rows,
            present=counts.present,
            covered=counts.covered,
            coverage=counts.covered / rows if rows else None,
            mean=counts.total / counts.numbers if counts.numbers else None,
            **out,
        )
