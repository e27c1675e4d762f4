"""What the watcher keeps per (experiment, arm): sufficient statistics of its outcomes.

One `ArmStats` holds, for the labelled examples of one arm, the count, the
sum and sum of squares of the label, how many were positive, and, for the
examples whose served score is a probability, the sum and sum of squares of
its log loss and a histogram of the scores of positives and of negatives
(`BINS` bins over [0, 1]); and, from the decisions, how many the arm
served, how many of them failed (``error_rate``), and a histogram of the
latency of those answered (`loopline.experiments.latency`).
Label metrics and log loss are means of
per-example values, so their estimate and the variance of one example come
from the sums; the AUC comes from the histograms (ties within a bin count
half) with the Hanley-McNeil variance. Two `ArmStats` add up (`merge`):
partitions are summed, nothing is kept per example.

`estimate` returns a metric's value and the variance of one example, so
that the variance of the estimate is that over the units (`units`) for
every metric (for the AUC: the Hanley-McNeil variance times the units).

>>> a = ArmStats()
>>> for label, score in ((1.0, 0.8), (0.0, 0.3), (0.0, 0.8), (1.0, 0.9)):
...     a.add(label, score)
>>> a.n, a.hits, estimate(a, "acceptance_rate")
(4, 2, (0.5, 0.25))
>>> round(estimate(a, "log_loss")[0], 4)
0.5737
>>> estimate(a, "auc")[0]   # 0.9 and 0.8 beat 0.3; 0.8 ties 0.8
0.875
>>> decode_stats(encode_stats(a)) == a
True
>>> for i in range(10):
...     a.add_decision(2.5, error=i == 0)
>>> a.decisions, a.errors, estimate(a, "error_rate")[0], units(a, "error_rate")
(10, 1, 0.1, 10)
>>> a.merge(a).n
8
"""

from __future__ import annotations

import math

import msgspec

from loopline.experiments.latency import add as add_latency

__all__ = [
    "BINS",
    "HIGHER_IS_BETTER",
    "LABELLED_METRICS",
    "ArmStats",
    "binary",
    "decode_stats",
    "encode_stats",
    "estimate",
    "units",
]

LABELLED_METRICS = ("mean_label", "acceptance_rate", "log_loss", "auc")
"""The metrics the watcher computes from labelled examples (sums of per-example values)."""

HIGHER_IS_BETTER = {
    "mean_label": True,
    "acceptance_rate": True,
    "log_loss": False,
    "auc": True,
    "p99_latency_ms": False,
    "error_rate": False,
}

BINS = 100
"""Histogram bins of the served score over [0, 1], for the AUC (ties within a bin count half)."""

_EPSILON = 1e-6  # a served probability of exactly 0 or 1 would make one loss infinite


class ArmStats(msgspec.Struct, array_like=True):
    """The sums of one arm's outcomes (see the module docstring)."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    hits: int = 0
    scored: int = 0
    loss: float = 0.0
    loss_squares: float = 0.0
    positives: list[int] = msgspec.field(default_factory=list)
    negatives: list[int] = msgspec.field(default_factory=list)
    decisions: int = 0
    latency: dict[int, int] = msgspec.field(default_factory=dict)
    errors: int = 0  # last: a state written before it existed still decodes

    def add(self, label: float, score: float | None = None) -> None:
        """Count one labelled example with `label`, served with `score`."""
        self.n += 1
        self.total += label
        self.squares += label * label
        positive = label > 0
        self.hits += positive
        if score is not None and 0.0 <= score <= 1.0:
            p = min(max(score, _EPSILON), 1.0 - _EPSILON)
            loss = -math.log(p if positive else 1.0 - p)
            self.scored += 1
            self.loss += loss
            self.loss_squares += loss * loss
            if not self.positives:
                self.positives, self.negatives = [0] * BINS, [0] * BINS
            (self.positives if positive else self.negatives)[min(int(score * BINS), BINS - 1)] += 1

    def add_decision(self, latency_ms: float, *, error: bool = False) -> None:
        """Count one decision the arm served in `latency_ms` (`loopline.experiments.latency`);
        `error`: the version failed to answer (its latency is not an answer's)."""
        self.decisions += 1
        if error:
            self.errors += 1
        else:
            add_latency(self.latency, latency_ms)

    def merge(self, other: ArmStats) -> ArmStats:
        """The statistics of both together (a new `ArmStats`)."""
        return ArmStats(
            self.n + other.n,
            self.total + other.total,
            self.squares + other.squares,
            self.hits + other.hits,
            self.scored + other.scored,
            self.loss + other.loss,
            self.loss_squares + other.loss_squares,
            _add(self.positives, other.positives),
            _add(self.negatives, other.negatives),
            self.decisions + other.decisions,
            {b: self.latency.get(b, 0) + other.latency.get(b, 0)
             for b in self.latency.keys() | other.latency.keys()},
            self.errors + other.errors,
        )  # fmt: skip


def _add(a: list[int], b: list[int]) -> list[int]:
    if not a or not b:
        return list(a or b)
    return [x + y for x, y in zip(a, b, strict=True)]


def binary(stats: ArmStats) -> bool:
    """Whether every label counted was 0 or 1 (then a Beta posterior fits)."""
    return stats.total == stats.hits and stats.squares == stats.total


def estimate(stats: ArmStats, metric: str) -> tuple[float, float]:
    """The mean of `metric` over the arm's examples and the variance of one example.

    ``(nan, nan)`` when there is nothing to estimate from yet.
    """
    if metric == "acceptance_rate":
        n, mean = stats.n, stats.hits / stats.n if stats.n else math.nan
        return mean, mean * (1.0 - mean)
    if metric == "error_rate":
        mean = stats.errors / stats.decisions if stats.decisions else math.nan
        return mean, mean * (1.0 - mean)
    if metric == "auc":
        return _auc(stats)
    if metric == "mean_label":
        n, total, squares = stats.n, stats.total, stats.squares
    elif metric == "log_loss":
        n, total, squares = stats.scored, stats.loss, stats.loss_squares
    else:
        raise ValueError(
            f"metric {metric!r} is not computed from labelled examples: use one of "
            f"{', '.join(LABELLED_METRICS)}"
        )
    if n == 0:
        return math.nan, math.nan
    mean = total / n
    variance = max(squares / n - mean * mean, 0.0) * (n / (n - 1) if n > 1 else 1.0)
    return mean, variance


def _auc(stats: ArmStats) -> tuple[float, float]:
    """The AUC from the histograms, and its Hanley-McNeil variance times the scored examples."""
    p, q = sum(stats.positives), sum(stats.negatives)
    if not p or not q:
        return math.nan, math.nan
    below = wins = 0.0
    for pos, neg in zip(stats.positives, stats.negatives, strict=True):
        wins += pos * (below + 0.5 * neg)
        below += neg
    a = wins / (p * q)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (p - 1) * (q1 - a * a) + (q - 1) * (q2 - a * a)) / (p * q)
    return a, max(variance, 0.0) * (p + q)


def units(stats: ArmStats, metric: str) -> int:
    """How many examples `metric` of this arm is computed from."""
    if metric == "p99_latency_ms":
        return stats.decisions - stats.errors
    if metric == "error_rate":
        return stats.decisions
    return stats.scored if metric in ("log_loss", "auc") else stats.n


def encode_stats(stats: ArmStats) -> bytes:
    return msgspec.json.encode(stats)


def decode_stats(data: bytes) -> ArmStats:
    return msgspec.json.decode(data, type=ArmStats)
