"""Thompson sampling: each arm's weight is the probability that it is the best arm.

Each arm's primary metric has a posterior given its outcomes: a
Beta(1 + positives, 1 + negatives) when every label is 0 or 1 (acceptance
rate, a binary mean label), else a normal around the arm's mean with the
variance of a mean (for the AUC: its Hanley-McNeil variance; a flat-ish prior: one pseudo-example at the pooled mean
and variance, so an arm with one outcome is not certain of anything). The
probability that an arm is best is the share of `draws` joint draws from the
posteriors in which it comes first (lower first for log loss). Serving then
draws each request's arm with those weights: Thompson sampling.

`floored` lifts every arm to at least `floor` (the rest is shared in
proportion), so no arm starves: a bandit that was unlucky early on still
learns about the arm it turned away from.

>>> from loopline.experiments.arm_stats import ArmStats
>>> a, b = ArmStats(), ArmStats()
>>> for i in range(300):
...     a.add(float(i % 7 == 0)); b.add(float(i % 3 == 0))   # 14% and 33%
>>> p = probability_best({"a": a, "b": b}, "acceptance_rate", seed=1)
>>> round(p["b"], 3)
1.0
>>> floored(p, 0.05)
{'a': 0.05, 'b': 0.95}
>>> moved({"a": 0.5, "b": 0.5}, {"a": 0.505, "b": 0.495}, 0.01)
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from loopline.experiments.arm_stats import HIGHER_IS_BETTER, ArmStats, binary, estimate, units

__all__ = ["DRAWS", "floored", "moved", "probability_best"]

DRAWS = 20_000
"""Joint draws per decision: the Monte Carlo error of a weight is under half a point."""


def probability_best(
    stats: Mapping[str, ArmStats], metric: str, *, seed: int = 0, draws: int = DRAWS
) -> dict[str, float]:
    """The probability that each arm of `stats` has the best `metric` (they add up to 1)."""
    names = list(stats)
    rng = np.random.default_rng(seed)
    if metric == "acceptance_rate" or (
        metric == "mean_label" and all(binary(s) for s in stats.values())
    ):
        samples = np.stack(
            [rng.beta(1 + s.hits, 1 + s.n - s.hits, size=draws) for s in stats.values()]
        )
    else:
        samples = np.stack(_normal(stats, metric, rng, draws))
        if not HIGHER_IS_BETTER[metric]:
            samples = -samples
    best = np.bincount(np.argmax(samples, axis=0), minlength=len(names))
    return {name: float(count) / draws for name, count in zip(names, best, strict=True)}


def _normal(
    stats: Mapping[str, ArmStats], metric: str, rng: np.random.Generator, draws: int
) -> list[np.ndarray]:
    """Draws of each arm's mean: normal posteriors with one pseudo-example of the pooled data."""
    pooled = ArmStats()
    for s in stats.values():
        pooled = pooled.merge(s)
    prior_mean, prior_variance = estimate(pooled, metric)
    if not math.isfinite(prior_mean):
        prior_mean, prior_variance = 0.0, 1.0
    prior_variance = max(prior_variance, 1e-12)
    out = []
    for s in stats.values():
        mean, variance = estimate(s, metric)
        n = units(s, metric)
        if n < 2 or not math.isfinite(mean):
            mean = mean if n and math.isfinite(mean) else prior_mean
            variance = prior_variance
        variance = max(variance, 1e-12)
        precision = 1.0 / prior_variance + n / variance
        centre = (prior_mean / prior_variance + (mean * n / variance if n else 0.0)) / precision
        out.append(rng.normal(centre, math.sqrt(1.0 / precision), size=draws))
    return out


def floored(probabilities: Mapping[str, float], floor: float) -> dict[str, float]:
    """Weights of at least `floor` each, the rest in proportion to `probabilities`.

    Rounded to 4 decimals, adding up to exactly 1 (the heaviest arm takes the rounding).
    """
    share = 1.0 - floor * len(probabilities)
    weights = {a: round(floor + share * p, 4) for a, p in probabilities.items()}
    heaviest = max(weights, key=lambda a: weights[a])
    weights[heaviest] = round(1.0 - sum(w for a, w in weights.items() if a != heaviest), 4)
    return weights


def moved(before: Mapping[str, float], after: Mapping[str, float], by: float) -> bool:
    """Whether some arm's weight moved by at least `by` (0.01: one point of traffic)."""
    return any(abs(after[a] - before.get(a, 0.0)) >= by - 1e-12 for a in after)
