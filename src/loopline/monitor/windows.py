"""What the monitor keeps of an open window of one key: plain counts, restored from its changelog.

A `DecisionWindow` counts the decisions of one tumbling window of one key
(model, version, arm, segment): decisions, candidates, latency buckets
(`loopline.monitor.sketch`), the scores' count, sum and sum of squares and
their bins in the version's score histogram, and a `FeatureCounts` per
feature. A `LabelWindow` keeps the (score, label) pairs of the labelled
examples that closed in the window (AUC needs them all) and the labels' sum.
Both are msgspec structs: a window is one changelog entry, JSON.

`window_start` puts an event time in its tumbling window:

>>> window_start(125_000, 60_000), window_start(-1, 60_000)
(120000, -60000)
>>> w = DecisionWindow()
>>> w.score(0.25); w.score(0.75)
>>> w.scores, w.score_sum, w.score_squares
(2, 1.0, 0.625)
"""

from __future__ import annotations

import math

import msgspec

from loopline.monitor.features import FeatureCounts

__all__ = ["DecisionWindow", "LabelWindow", "WindowKey", "mean_std", "window_start"]


class WindowKey(msgspec.Struct, frozen=True, array_like=True):
    """Which window: the source, its size (ms), its start (ms), and the key it counts (for
    ``feeds``, `model` holds the source topic)."""

    source: str
    size: int
    start: int
    model: str
    model_version: int
    arm: str
    segment: str


def window_start(at: int, size: int) -> int:
    """The start of the tumbling window of `size` ms holding event time `at` (ms)."""
    return at - at % size


class DecisionWindow(msgspec.Struct):
    """The counts of one decision window (see the module docstring)."""

    decisions: int = 0
    errors: int = 0  # decisions of requests that failed (their `error`), no candidates
    unknown: int = 0  # decisions of requests refused for an unknown entity, no candidates
    candidates: int = 0
    latency: dict[int, int] = {}  # of the answered requests
    scores: int = 0
    score_sum: float = 0.0
    score_squares: float = 0.0
    score_bins: list[int] | None = None
    features: dict[str, FeatureCounts] = {}

    def score(self, value: float) -> None:
        if value.__class__ is not float or math.isfinite(value):
            self.scores += 1
            self.score_sum += value
            self.score_squares += value * value


class LabelWindow(msgspec.Struct):
    """The labelled examples of one window: (score, label) pairs and the labels' sum."""

    labels: int = 0
    label_sum: float = 0.0
    pairs: list[tuple[float, float]] = []


def mean_std(n: int, total: float, squares: float) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1, as pandas) from a count, sum and sum of squares.

    >>> mean_std(3, 6.0, 14.0)
    (2.0, 1.0)
    """
    if not n:
        return None, None
    mean = total / n
    if n < 2:
        return mean, None
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    return mean, math.sqrt(variance)
