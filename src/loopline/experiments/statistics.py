"""What the watcher keeps per (experiment, arm): sufficient statistics of its outcomes.

One `ArmStats` holds, for the labelled examples of one arm, the count, the
sum and sum of squares of the label, how many were positive, and the sum and
sum of squares of the log loss of the served score (for examples whose score
is a probability). Every metric the watcher reads from labelled examples is a
mean of per-example values, so its estimate and the variance of one example
come from these sums alone (`estimate`), and two `ArmStats` add up
(`merge`): partitions are summed, nothing is kept per example.

>>> a = ArmStats()
>>> for label in (1.0, 0.0, 0.0, 1.0):
...     a.add(label, 0.8)
>>> a.n, a.hits, estimate(a, "acceptance_rate")
(4, 2, (0.5, 0.25))
>>> round(estimate(a, "log_loss")[0], 4)   # -(log .8 + log .2) / 2
0.9163
>>> decode_stats(encode_stats(a)) == a
True
>>> a.merge(a).n
8
"""

from __future__ import annotations

import math

import msgspec

__all__ = [
    "HIGHER_IS_BETTER",
    "LABELLED_METRICS",
    "ArmStats",
    "binary",
    "decode_stats",
    "encode_stats",
    "estimate",
    "units",
]

LABELLED_METRICS = ("mean_label", "acceptance_rate", "log_loss")
"""The metrics the watcher computes from labelled examples (sums of per-example values)."""

HIGHER_IS_BETTER = {"mean_label": True, "acceptance_rate": True, "log_loss": False}

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
        )


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


def units(stats: ArmStats, metric: str) -> int:
    """How many examples `metric` of this arm is computed from."""
    return stats.scored if metric == "log_loss" else stats.n


def encode_stats(stats: ArmStats) -> bytes:
    return msgspec.json.encode(stats)


def decode_stats(data: bytes) -> ArmStats:
    return msgspec.json.decode(data, type=ArmStats)
