"""How a treatment compares with control on one metric: means, lifts, intervals, p-values.

Every metric of the report is a mean over *units* (the experiment's unit of
assignment): each unit contributes one value (its mean label, its mean log
loss), so units are the independent observations the tests assume, however
many decisions or examples one unit had. An arm is a `Summary` of those
values: the count, the mean and the sample variance (ddof 1).

`compare` puts a treatment beside control:

- the absolute lift (treatment - control) with Welch's t interval and its
  two-sided p-value (unequal variances, Welch-Satterthwaite degrees of
  freedom): the fixed-horizon test, valid when the report is read once;
- the relative lift (treatment / control - 1) with a normal interval whose
  variance comes from the delta method (Deng et al. 2018, "Applying the Delta
  Method in Metric Analytics", eq. 4, independent arms);
- the anytime-valid interval of the absolute and relative lift
  (`loopline.experiments.sequential.confidence_sequence`), valid however often
  the report was looked at before;
- the Bayesian chance to beat control: the posterior probability that the
  treatment is better, under a flat prior and the normal approximation of
  the difference (P = Phi(lift / se), or 1 - that for a metric where lower
  is better, such as log loss).

A value that cannot be computed (one unit, no variance) is NaN.

>>> control = Summary(n=1000, mean=0.10, variance=0.09)
>>> treatment = Summary(n=1000, mean=0.13, variance=0.1131)
>>> c = compare(control, treatment)
>>> round(c.lift, 4), [round(x, 4) for x in c.interval], round(c.p_value, 4)
(0.03, [0.0021, 0.0579], 0.0354)
>>> round(c.relative, 2), [round(x, 3) for x in c.relative_interval]
(0.3, [-0.019, 0.619])
>>> [round(x, 4) for x in c.anytime_interval], round(c.chance_to_beat, 3)
([-0.0145, 0.0745], 0.982)
>>> [round(x, 4) for x in mean_interval(control)]
[0.0814, 0.1186]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from loopline.experiments.sequential import TUNING, confidence_sequence

__all__ = ["Comparison", "Summary", "compare", "mean_interval", "summarize"]

NAN = math.nan


@dataclass(frozen=True, slots=True)
class Summary:
    """One arm's values of a metric: how many units, their mean, their sample variance."""

    n: int
    mean: float
    variance: float

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.variance / self.n) if self.n > 1 else NAN


def summarize(values: np.ndarray) -> Summary:
    """The `Summary` of one value per unit.

    >>> summarize(np.array([1.0, 0.0, 1.0, 1.0]))
    Summary(n=4, mean=0.75, variance=0.25)
    """
    n = len(values)
    mean = float(np.mean(values)) if n else NAN
    variance = float(np.var(values, ddof=1)) if n > 1 else NAN
    return Summary(n, mean, variance)


def mean_interval(summary: Summary, alpha: float = 0.05) -> tuple[float, float]:
    """The t interval (n - 1 degrees of freedom) of the arm's mean."""
    s = summary
    if s.n < 2 or not math.isfinite(s.variance):
        return NAN, NAN
    half = float(special.stdtrit(s.n - 1, 1 - alpha / 2)) * s.standard_error
    return s.mean - half, s.mean + half


@dataclass(frozen=True, slots=True)
class Comparison:
    """A treatment against control on one metric (see the module docstring)."""

    lift: float
    interval: tuple[float, float]
    p_value: float
    relative: float
    relative_interval: tuple[float, float]
    anytime_interval: tuple[float, float]
    anytime_relative_interval: tuple[float, float]
    chance_to_beat: float
    degrees_of_freedom: float
    standard_error: float


def compare(
    control: Summary,
    treatment: Summary,
    *,
    alpha: float = 0.05,
    lower_is_better: bool = False,
    tuning: float = TUNING,
) -> Comparison:
    """`treatment` against `control` (Welch's test, delta-method relative lift, ...)."""
    a, b = control, treatment
    lift = b.mean - a.mean
    relative = lift / a.mean if a.mean else NAN
    if a.n < 2 or b.n < 2 or not (math.isfinite(a.variance) and math.isfinite(b.variance)):
        nans = (NAN, NAN)
        return Comparison(lift, nans, NAN, relative, nans, nans, nans, NAN, NAN, NAN)
    va, vb = a.variance / a.n, b.variance / b.n
    variance = va + vb
    se = math.sqrt(variance)
    if se > 0:
        df = variance**2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
        t = lift / se
        p_value = float(2 * special.stdtr(df, -abs(t)))
        half = float(special.stdtrit(df, 1 - alpha / 2)) * se
        beat = float(special.ndtr(lift / se))
    else:  # both arms constant: nothing varies, so nothing to test
        df, p_value, half = NAN, NAN, NAN
        beat = NAN
    interval = (lift - half, lift + half)
    units = a.n + b.n
    anytime = confidence_sequence(lift, variance, units, alpha, tuning)
    if a.mean and se > 0:
        # delta method for (mean_b / mean_a - 1), independent arms
        rel_var = vb / a.mean**2 + b.mean**2 * va / a.mean**4
        z = float(special.ndtri(1 - alpha / 2))
        rel_half = z * math.sqrt(rel_var)
        relative_interval = (relative - rel_half, relative + rel_half)
        anytime_relative = confidence_sequence(relative, rel_var, units, alpha, tuning)
    else:
        relative_interval = anytime_relative = (NAN, NAN)
    if lower_is_better and math.isfinite(beat):
        beat = 1.0 - beat
    return Comparison(
        lift,
        interval,
        p_value,
        relative,
        relative_interval,
        anytime,
        anytime_relative,
        beat,
        df,
        se,
    )
