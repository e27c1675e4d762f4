"""Guardrails and winners: each treatment against control, by the anytime-valid test.

For a metric, a treatment's difference to control (treatment minus control)
has an anytime-valid 1 - alpha interval (`loopline.experiments.sequential`):
it may be read after every outcome without inflating false alarms. A
guardrail ``Guardrail(metric, margin)`` is *breached* when the whole interval
says the treatment is worse than control by more than `margin` (relative to
control's value): for a metric where higher is better, the interval's upper
end is below ``-margin * |control|``. A treatment *wins* when the interval of
the primary metric lies wholly on the better side of 0. From the decisions:
the error rate (the share of requests the arm's version failed) is compared
like a label mean, and the p99 latency by `compare_p99`, lower being better
for both.

Nothing is concluded from fewer than `MIN_UNITS` examples of an arm: the
interval rests on the central limit theorem, which a handful of 0/1 labels
do not satisfy.

>>> from loopline.experiments.records import Arm, Experiment, Guardrail
>>> from loopline.experiments.arm_stats import ArmStats
>>> e = Experiment(name="e", model="m", primary="acceptance_rate",
...     guardrails=(Guardrail("acceptance_rate", 0.0),), arms=(
...     Arm("control", alias="production", weight=0.5, control=True), Arm("v2", version=2, weight=0.5)))
>>> control, worse = ArmStats(), ArmStats()
>>> for i in range(2000):
...     control.add(float(i % 5 == 0)); worse.add(float(i % 10 == 0))   # 20% and 10%
>>> v = breach(e, {"control": control, "v2": worse})
>>> v.metric, v.arm, round(v.estimate, 3), v.high < 0, v.units
('acceptance_rate', 'v2', -0.1, True, 4000)
>>> winner(e, {"control": worse, "v2": control}).arm
'v2'
>>> breach(e, {"control": control, "v2": control}) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from loopline.experiments.arm_stats import (
    HIGHER_IS_BETTER,
    LABELLED_METRICS,
    ArmStats,
    estimate,
    units,
)
from loopline.experiments.latency import quantile, quantile_interval
from loopline.experiments.records import Experiment, Verdict
from loopline.experiments.sequential import TUNING, confidence_sequence

__all__ = [
    "MIN_DECISIONS",
    "MIN_UNITS",
    "WATCHED",
    "Comparison",
    "breach",
    "compare",
    "compare_p99",
    "unwatched",
    "winner",
]

MIN_UNITS = 30
"""Examples each arm needs before its interval is read at all."""

MIN_DECISIONS = 100
"""Decisions each arm needs before its p99 latency is compared (a p99 of fewer is the maximum)."""

WATCHED = (*LABELLED_METRICS, "error_rate", "p99_latency_ms")
"""The metrics the watcher computes: from labelled examples, and from decisions the error
rate and the latency."""


@dataclass(frozen=True)
class Comparison:
    """A treatment against control on one metric: the difference and its interval."""

    metric: str
    arm: str
    control: float
    difference: float
    low: float
    high: float
    units: int

    def verdict(self) -> Verdict:
        return Verdict(self.metric, self.arm, self.difference, self.low, self.high, self.units)


def compare(
    metric: str,
    arm: str,
    control: ArmStats,
    treatment: ArmStats,
    *,
    alpha: float = 0.05,
    tuning: float = TUNING,
) -> Comparison | None:
    """The anytime-valid comparison of `treatment` with `control` (None: too few examples)."""
    n_c, n_t = units(control, metric), units(treatment, metric)
    if min(n_c, n_t) < MIN_UNITS:
        return None
    mean_c, var_c = estimate(control, metric)
    mean_t, var_t = estimate(treatment, metric)
    # An arm's own variance collapses on a run of equal labels (0 of 40 accepted: variance
    # 0, a falsely certain interval); neither arm is taken as less variable than both pooled.
    _, pooled = estimate(control.merge(treatment), metric)
    if not all(math.isfinite(x) for x in (mean_c, mean_t, var_c, var_t, pooled)):
        return None  # an AUC of an arm with no positives (or no negatives) yet
    var_c, var_t = max(var_c, pooled), max(var_t, pooled)
    difference = mean_t - mean_c
    low, high = confidence_sequence(difference, var_c / n_c + var_t / n_t, n_c + n_t, alpha, tuning)
    return Comparison(metric, arm, mean_c, difference, low, high, n_c + n_t)


def compare_p99(
    arm: str, control: ArmStats, treatment: ArmStats, *, alpha: float = 0.05
) -> Comparison | None:
    """The treatment's p99 latency minus control's, with an anytime-valid interval.

    Each arm's p99 has its own interval at alpha / 2 (`latency.quantile_interval`);
    the difference's interval spans them. None before each arm served `MIN_DECISIONS`.
    """
    answered_c, answered_t = units(control, "p99_latency_ms"), units(treatment, "p99_latency_ms")
    if min(answered_c, answered_t) < MIN_DECISIONS:
        return None
    p_c, p_t = quantile(control.latency, 0.99), quantile(treatment.latency, 0.99)
    low_c, high_c = quantile_interval(control.latency, 0.99, alpha=alpha / 2)
    low_t, high_t = quantile_interval(treatment.latency, 0.99, alpha=alpha / 2)
    answered = answered_c + answered_t
    return Comparison(
        "p99_latency_ms", arm, p_c, p_t - p_c, low_t - high_c, high_t - low_c, answered
    )


def _comparisons(
    experiment: Experiment, stats: Mapping[str, ArmStats], metric: str
) -> Iterator[Comparison]:
    control = stats.get(experiment.control.name)
    if control is None or metric not in WATCHED:
        return
    for arm in experiment.treatments:
        treatment = stats.get(arm.name)
        if treatment is None:
            continue
        if metric == "p99_latency_ms":
            c = compare_p99(arm.name, control, treatment, alpha=experiment.alpha)
        else:
            c = compare(metric, arm.name, control, treatment, alpha=experiment.alpha)
        if c is not None:
            yield c


def breach(experiment: Experiment, stats: Mapping[str, ArmStats]) -> Verdict | None:
    """The first guardrail a treatment breaches, as a `Verdict`; None while all hold."""
    for guardrail in experiment.guardrails:
        for c in _comparisons(experiment, stats, guardrail.metric):
            allowed = guardrail.margin * abs(c.control)
            if HIGHER_IS_BETTER[c.metric] and c.high < -allowed:
                return c.verdict()
            if not HIGHER_IS_BETTER[c.metric] and c.low > allowed:
                return c.verdict()
    return None


def winner(experiment: Experiment, stats: Mapping[str, ArmStats]) -> Verdict | None:
    """The treatment whose primary metric beats control with confidence (the best, if several)."""
    better = HIGHER_IS_BETTER.get(experiment.primary, True)
    wins = [
        c
        for c in _comparisons(experiment, stats, experiment.primary)
        if (c.low > 0 if better else c.high < 0)
    ]
    if not wins:
        return None
    best = max(wins, key=lambda c: c.difference if better else -c.difference)
    return best.verdict()


def unwatched(experiment: Experiment) -> list[str]:
    """The metrics `experiment` declares that the watcher does not compute."""
    declared = [experiment.primary, *(g.metric for g in experiment.guardrails)]
    return sorted({m for m in declared if m not in WATCHED})
