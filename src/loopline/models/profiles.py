"""Training profiles: what a model version's data looked like, published and signed with it.

`loopline train` profiles the rows it trained on and the scores it made on
the held-out later rows, and publishes the profile inside the version's
signed metadata (docs/decisions/0025). The monitor compares what is served
against it: coverage, mean, and drift on the profile's own bins
(`loopline.monitor.drift`).

Per feature (`FeatureProfile`), over the training rows: the count, how many
are missing (null or NaN) and how many hold the feature's declared default,
the coverage (the share that is neither), mean, standard deviation (sample,
``ddof=1``, as pandas), minimum, maximum, quantiles, and a fixed `Histogram`
(numbers: training deciles plus open ends; text: the most frequent categories
plus "other"). Booleans are numbers 0/1 in two bins, ``[0, 0.5)`` and ``[0.5, 1]``.

Per prediction (`PredictionProfile`), over the held-out later rows that the
version's test metrics were computed on (scores on training rows are
optimistic): a histogram of the scores, and the mean score and mean label (the
label rate) with their `Spread` over time-ordered chunks, from which
`Spread.interval` gives the range a served window's mean should stay in.

>>> table = pa.table({"clicks": [0, 1, 3, None, 0], "new": [True, False, True, True, None]})
>>> profile = Profile(rows=5, features=profile_features(table, ["clicks", "new"], {"clicks": 0}))
>>> clicks = profile.feature("clicks")
>>> clicks.kind, clicks.count, clicks.nulls, clicks.defaults, clicks.coverage, clicks.mean
('number', 5, 1, 2, 0.4, 1.0)
>>> profile.feature("new").mean  # booleans: the share of true
0.75
>>> Profile.from_dict(profile.to_dict()) == profile
True
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np
import pyarrow as pa

from loopline.models.histograms import (
    BINS,
    TOP,
    Histogram,
    category_histogram,
    edges_of,
    number_histogram,
)
from loopline.models.registry_records import ModelVersion
from loopline.models.signing import UntrustedModel, Verifier

__all__ = [
    "PROFILE_SCHEMA",
    "QUANTILES",
    "FeatureProfile",
    "PredictionProfile",
    "Profile",
    "ProfileError",
    "Spread",
    "predictions_profile",
    "profile_features",
    "read_profile",
]

PROFILE_SCHEMA = 1
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
CHUNKS = 10  # time-ordered chunks of the held-out rows, for the spread of the means


class ProfileError(ValueError):
    """A profile that cannot be read (a newer schema, or not a profile)."""


def _number(value: Any) -> float | None:
    """A float fit for JSON: None for NaN and infinities (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


class FeatureProfile(msgspec.Struct, frozen=True, kw_only=True):
    """One feature over the training rows (see the module docstring)."""

    name: str
    kind: Literal["number", "bool", "category"]
    count: int  # rows
    nulls: int  # null or NaN
    defaults: int  # equal to `default` (0 when the default is None: that is a null)
    default: float | str | None = None
    coverage: float  # (count - nulls - defaults) / count
    mean: float | None = None
    std: float | None = None  # sample standard deviation (ddof=1)
    min: float | None = None
    max: float | None = None
    quantiles: list[tuple[float, float]] = []  # (level, value), linear interpolation
    histogram: Histogram

    @property
    def null_rate(self) -> float:
        return self.nulls / self.count if self.count else 0.0

    @property
    def default_rate(self) -> float:
        return self.defaults / self.count if self.count else 0.0

    def shares(self) -> list[tuple[str, float]]:
        """Each histogram bin's name and share of the present values (categories: the top ones, then "(other)")."""
        total = sum(self.histogram.counts)
        return [
            (label, count / total if total else 0.0)
            for label, count in zip(self.histogram.labels(), self.histogram.counts, strict=True)
        ]


class Spread(msgspec.Struct, frozen=True, kw_only=True):
    """A per-row quantity's mean, its per-row spread, and its means over time-ordered chunks.

    `interval(rows)` is where the mean of `rows` new rows should fall with
    probability `level` if nothing changed: ``mean +- z * sqrt(std**2 / rows +
    between)``, where `between` is the variance of the chunk means beyond what
    the chunks' own sampling noise explains (how much the mean moved over time
    within the held-out period; 0 when it did not). A normal approximation:
    fine for windows of tens of rows and more.

    >>> s = Spread(mean=0.2, std=0.4, rows=1000, chunk_means=[0.2] * 10, chunk_rows=[100] * 10)
    >>> [round(x, 4) for x in s.interval(400)]  # 0.2 +- 2.5758 * 0.4 / 20
    [0.1485, 0.2515]
    """

    mean: float | None
    std: float | None
    rows: int
    chunk_means: list[float]
    chunk_rows: list[int]

    def between(self) -> float:
        """The variance of the chunk means in excess of their sampling noise (>= 0)."""
        if len(self.chunk_means) < 2 or self.std is None:
            return 0.0
        observed = statistics.variance(self.chunk_means)
        noise = self.std**2 / (sum(self.chunk_rows) / len(self.chunk_rows))
        return max(0.0, observed - noise)

    def interval(self, rows: int, level: float = 0.99) -> tuple[float, float]:
        """Where the mean of `rows` served rows should stay with probability `level`."""
        if rows < 1:
            raise ValueError(f"an interval needs a window of at least 1 row, not {rows}")
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be between 0 and 1 (exclusive), not {level}")
        if self.mean is None:
            return (math.nan, math.nan)
        z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
        half = z * math.sqrt((self.std or 0.0) ** 2 / rows + self.between())
        return (self.mean - half, self.mean + half)


class PredictionProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The scores and labels of the held-out later rows (the rows of the version's test metrics)."""

    task: str
    rows: int
    histogram: Histogram  # of the scores, on their quantile edges with open ends
    score: Spread
    label: Spread  # for a classification, its mean is the label rate


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A model version's training profile: its features and its predictions."""

    schema: int = PROFILE_SCHEMA
    rows: int  # training rows
    features: list[FeatureProfile]
    predictions: PredictionProfile | None = None

    def feature(self, name: str) -> FeatureProfile:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(
            f"the profile has no feature {name!r}; it has {', '.join(f.name for f in self.features)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON data (what the version's metadata holds)."""
        return msgspec.to_builtins(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """The profile `data` holds; `ProfileError` for a newer schema or malformed data."""
        schema = data.get("schema") if isinstance(data, Mapping) else None
        if isinstance(schema, int) and schema > PROFILE_SCHEMA:
            raise ProfileError(
                f"the profile has schema {schema}, newer than the {PROFILE_SCHEMA} this loopline "
                "reads: upgrade loopline to read it"
            )
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise ProfileError(f"not a training profile: {exc}") from None


# -- computing it --------------------------------------------------------------------------


def _kind(kind: pa.DataType) -> Literal["number", "bool", "category"]:
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
        return "number"
    return "category"


def _number_feature(
    name: str, kind: Literal["number", "bool"], column: pa.ChunkedArray, default: Any, bins: int
) -> FeatureProfile:
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    missing = np.isnan(values)
    present = values[~missing]
    count, nulls = len(values), int(missing.sum())
    numeric_default = isinstance(default, int | float) and not (
        isinstance(default, float) and math.isnan(default)
    )
    defaults = int(np.count_nonzero(present == float(default))) if numeric_default else 0
    finite = present[np.isfinite(present)]
    quantiles: list[tuple[float, float]] = []
    edges: list[float] = [0.0, 0.5, 1.0] if kind == "bool" else []
    if finite.size:
        # One selection for the quantiles and the decile edges: it is most of the time spent.
        deciles = np.linspace(0.0, 1.0, bins + 1)
        levels = np.union1d(deciles, QUANTILES)
        at = dict(zip(levels.tolist(), np.quantile(finite, levels).tolist(), strict=True))
        quantiles = [(q, at[q]) for q in QUANTILES]
        if kind == "number":
            edges = edges_of(np.array([at[q] for q in deciles.tolist()]))
    with np.errstate(invalid="ignore"):  # infinities: a NaN moment, recorded as None
        moments = (
            _number(present.mean()) if present.size else None,
            _number(present.std(ddof=1)) if present.size > 1 else None,
        )
    return FeatureProfile(
        name=name,
        kind=kind,
        count=count,
        nulls=nulls,
        defaults=defaults,
        default=(float(default) if numeric_default else None),
        coverage=(count - nulls - defaults) / count if count else 0.0,
        mean=moments[0],
        std=moments[1],
        min=_number(present.min()) if present.size else None,
        max=_number(present.max()) if present.size else None,
        quantiles=quantiles,
        histogram=number_histogram(present, edges=edges),
    )


def _category_feature(name: str, column: pa.ChunkedArray, default: Any, top: int) -> FeatureProfile:
    count, nulls = len(column), column.null_count
    histogram = category_histogram(column, top=top)
    defaults = 0
    if default is not None:
        text = str(default)
        present = column.drop_null()
        if not pa.types.is_string(present.type):
            present = present.cast(pa.string())
        defaults = int(np.count_nonzero(present.to_numpy(zero_copy_only=False) == text))
    return FeatureProfile(
        name=name,
        kind="category",
        count=count,
        nulls=nulls,
        defaults=defaults,
        default=None if default is None else str(default),
        coverage=(count - nulls - defaults) / count if count else 0.0,
        histogram=histogram,
    )


def profile_features(
    table: pa.Table,
    features: Sequence[str],
    defaults: Mapping[str, Any] | None = None,
    *,
    bins: int = BINS,
    top: int = TOP,
) -> list[FeatureProfile]:
    """The profile of each of `features` (columns of `table`); `defaults` maps a feature to
    its declared default value (the value served when there is none: 0 for a count)."""
    defaults = defaults or {}
    out = []
    for name in features:
        column = table[name]
        kind = _kind(column.type)
        default = defaults.get(name)
        if kind == "category":
            out.append(_category_feature(name, column, default, top))
        else:
            out.append(_number_feature(name, kind, column, default, bins))
    return out


def _spread(values: np.ndarray, chunks: int) -> Spread:
    parts = [p for p in np.array_split(values, min(chunks, max(1, values.size))) if p.size]
    return Spread(
        mean=_number(values.mean()) if values.size else None,
        std=_number(values.std(ddof=1)) if values.size > 1 else None,
        rows=int(values.size),
        chunk_means=[float(p.mean()) for p in parts],
        chunk_rows=[int(p.size) for p in parts],
    )


def predictions_profile(
    task: str, scores: np.ndarray, labels: np.ndarray, *, bins: int = BINS, chunks: int = CHUNKS
) -> PredictionProfile:
    """The profile of `scores` and `labels` of held-out rows, in time order (for the chunks).

    A row whose score is not a finite number (a model that could not score it) is left out.

    >>> p = predictions_profile("classification", np.linspace(0, 1, 100), np.arange(100) % 4 == 0)
    >>> p.rows, p.label.mean, len(p.score.chunk_means), p.histogram.counts[0]
    (100, 0.25, 10, 0)
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    scored = np.isfinite(scores) & np.isfinite(labels)
    scores, labels = scores[scored], labels[scored]
    return PredictionProfile(
        task=task,
        rows=int(scores.size),
        histogram=number_histogram(scores, bins=bins),
        score=_spread(scores, chunks),
        label=_spread(labels, chunks),
    )


# -- reading it ------------------------------------------------------------------------------


def read_profile(version: ModelVersion, verifier: Verifier | None = None) -> Profile | None:
    """The training profile of `version` (None for a version published without one).

    With `verifier`, the version's signature is checked first, and a profile
    that is not the one signed raises `UntrustedModel`: the monitor compares
    against a baseline only if it is the publisher's.
    """
    if verifier is not None:
        what = f"model {version.name!r} v{version.version}"
        try:
            verifier.verify(version.statement(), version.signature)
        except UntrustedModel as exc:
            raise UntrustedModel(f"{what}: its profile cannot be trusted: {exc}") from None
    if version.profile is None:
        return None
    return Profile.from_dict(version.profile)
