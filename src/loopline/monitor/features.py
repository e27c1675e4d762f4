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
from typing import Any, NamedTuple

import msgspec
import numpy as np

from loopline.models.profiles import FeatureProfile
from loopline.monitor.drift import bin_points, jensen_shannon, psi, wasserstein
from loopline.monitor.records import FeatureStats

__all__ = [
    "NUMBERS",
    "Column",
    "FeatureCounter",
    "FeatureCounts",
    "apply",
    "number_bin",
    "number_bins",
]


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


def number_bins(edges: list[float], x: np.ndarray) -> np.ndarray:
    """`number_bin` of every number in `x` at once.

    >>> number_bins([1.0, 2.5, 4.0], np.array([0.0, 1.0, 2.5, 4.0, 9.0])).tolist()
    [0, 1, 2, 2, 3]
    """
    if not edges:
        return np.zeros(len(x), dtype=np.int64)
    bounds = np.asarray(edges, dtype=np.float64)
    at = np.searchsorted(bounds, x, side="right")
    at[x == bounds[-1]] = len(edges) - 1
    return at


def running_sum(start: float, values: np.ndarray) -> float:
    """``start + values[0] + values[1] + ...`` added left to right, as a loop of ``+=`` does
    (`np.add.accumulate` adds in order; ``sum`` pairs): the same total from any batching.

    >>> running_sum(0.1, np.array([0.2, 0.3])) == 0.1 + 0.2 + 0.3
    True
    """
    if not len(values):
        return start
    with np.errstate(over="ignore", invalid="ignore"):  # as Python's floats: inf, nan
        return float(np.add.accumulate(np.concatenate(([start], values)))[-1])


class Column(NamedTuple):
    """A column of served values classified at once (`FeatureCounter.column`): per value,
    whether it is present and covered, its number (`numeric`: whether it is one) and bin."""

    present: np.ndarray  # bool
    covered: np.ndarray  # bool, False where missing
    numeric: np.ndarray  # bool
    number: np.ndarray  # float64, NaN where no number
    bin: np.ndarray  # int64, -1 where no bin

    def take(self, rows: np.ndarray) -> Column:
        return Column(*(a[rows] for a in self))


NUMBERS = frozenset({float, int, bool, type(None)})
_TEXTS = frozenset({str, type(None)})
_EXACT = 2**53  # integers up to this compare with floats exactly once converted


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
        self.numeric_default = isinstance(self.default, int | float)
        self.default_text = None if self.default is None else str(self.default)
        h = profile.histogram if profile is not None else None
        self.histogram = h
        self.numeric = h.numeric if h is not None else None
        self.edges = h.edges if h is not None else []
        self.index = {c: i for i, c in enumerate(h.categories)} if h is not None else {}
        self.width = len(h.counts) if h is not None else 0
        # numbers served (and None) can go through `numbers`: compared and binned as floats
        self.takes_numbers = (self.default is None or self.numeric_default) and (
            h is None or bool(self.numeric)
        )

    def classify(self, value: Any) -> tuple[int, float | None, int] | None:
        """What one served `value` adds: (covered 0/1, its number or None, its bin or -1);
        None for a missing value (None or NaN). Done once per value, added to each window."""
        if value is None or (value.__class__ is float and value != value):
            return None
        number = value if isinstance(value, int | float) else None
        default = self.default
        if default is None:
            covered = 1
        elif number is not None and self.numeric_default:
            covered = 0 if value == default else 1
        else:
            covered = 0 if str(value) == self.default_text else 1
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

    def column(self, values: list[Any]) -> Column:
        """`classify` of every value in `values` at once (None for a missing one): numbers
        and texts in numpy, any other mix one value at a time.

        >>> import pyarrow as pa
        >>> from loopline.models.profiles import profile_features
        >>> trained = profile_features(pa.table({"n": [0, 1, 2, 3]}), ["n"], {"n": 0})[0]
        >>> c = FeatureCounter("n", trained).column([0, 2.5, None, float("nan")])
        >>> c.present.tolist(), c.covered.tolist(), c.bin.tolist()
        ([True, True, False, False], [False, True, False, False], [1, 9, -1, -1])
        """
        types = set(map(type, values))
        if types <= NUMBERS and self.takes_numbers:
            column = self.numbers(np.array(values, dtype=np.float64), int in types)  # None: NaN
            if column is not None:
                return column
        n, h = len(values), self.histogram
        if types <= _TEXTS:
            present = np.fromiter((v is not None for v in values), dtype=bool, count=n)
            text = self.default_text
            covered = (
                present.copy()
                if text is None
                else present & np.fromiter((v != text for v in values), dtype=bool, count=n)
            )
            if h is None or self.numeric:  # text served for a number trained: no bin
                at = np.full(n, -1, dtype=np.int64)
            else:
                index, other = self.index, self.width - 1
                at = np.fromiter(
                    (-1 if v is None else index.get(v, other) for v in values),
                    dtype=np.int64, count=n,
                )  # fmt: skip
            return Column(present, covered, np.zeros(n, dtype=bool), np.full(n, np.nan), at)
        return self._one_by_one(values)

    def numbers(self, x: np.ndarray, ints: bool) -> Column | None:
        """The `Column` of numbers `x` (NaN: missing) served as numbers (`ints`: some were
        ints); None when one is too large an int to compare with the default as a float."""
        present = ~np.isnan(x)
        default = self.default
        if (ints or isinstance(default, int)) and (
            np.abs(x[present]).max(initial=0) >= _EXACT
            or (isinstance(default, int) and abs(default) >= _EXACT)
        ):
            return None
        covered = present if default is None else present & (x != default)
        if self.histogram is None:
            at = np.full(len(x), -1, dtype=np.int64)
        else:
            at = np.where(present, number_bins(self.edges, x), -1)
        return Column(present, covered, present, x, at)

    def _one_by_one(self, values: list[Any]) -> Column:
        seen = [self.classify(v) for v in values]
        n = len(seen)
        return Column(
            np.fromiter((s is not None for s in seen), dtype=bool, count=n),
            np.fromiter((s is not None and s[0] == 1 for s in seen), dtype=bool, count=n),
            np.fromiter((s is not None and s[1] is not None for s in seen), dtype=bool, count=n),
            np.fromiter(
                (np.nan if s is None or s[1] is None else s[1] for s in seen),
                dtype=np.float64,
                count=n,
            ),
            np.fromiter((-1 if s is None else s[2] for s in seen), dtype=np.int64, count=n),
        )

    def add_column(self, counts: FeatureCounts, column: Column) -> None:
        """Count a `column` into `counts`: the same counts as `add` of each of its values."""
        present = int(np.count_nonzero(column.present))
        if not present:
            return
        counts.present += present
        counts.covered += int(np.count_nonzero(column.covered))
        numbers = column.number[column.numeric]
        if len(numbers):
            counts.numbers += len(numbers)
            counts.total = running_sum(counts.total, numbers)
        binned = column.bin[column.bin >= 0]
        if len(binned):
            added = np.bincount(binned, minlength=self.width).tolist()
            counts.bins = (
                added
                if counts.bins is None
                else [a + b for a, b in zip(counts.bins, added, strict=True)]
            )

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
