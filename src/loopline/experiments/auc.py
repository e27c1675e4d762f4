"""The AUC of one arm's scores against its labels, with DeLong's variance.

The AUC is the chance that a positive example scores above a negative one
(ties count half). Its variance is DeLong's (DeLong, DeLong & Clarke-Pearson
1988), computed from midranks in O(n log n) as in Sun & Xu 2014 ("Fast
implementation of DeLong's algorithm"; here one sort serves all three rankings): each positive's *placement* is the
share of negatives it beats, each negative's the share of positives that beat
it, and var(AUC) = var(placements of positives) / m + var(placements of
negatives) / n. Two arms hold different examples, so the variance of their
difference is the sum of the two. Examples are treated as independent (a
unit with many examples makes the interval somewhat narrow; the unit-level
metrics of the report do not have that weakness).

>>> a = delong(np.array([1, 1, 0, 0, 1]), np.array([0.9, 0.4, 0.5, 0.1, 0.8]))
>>> round(a.auc, 4), round(a.variance, 4), a.positives, a.negatives
(0.8333, 0.0556, 3, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from loopline.experiments.sequential import confidence_sequence
from loopline.experiments.statistics import Comparison

__all__ = ["AUC", "compare_auc", "delong"]


@dataclass(frozen=True, slots=True)
class AUC:
    """One arm's AUC, its DeLong variance, and the examples it counted."""

    auc: float
    variance: float
    positives: int
    negatives: int

    def interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """The normal 1 - `alpha` interval of the AUC."""
        half = float(special.ndtri(1 - alpha / 2)) * math.sqrt(self.variance)
        return self.auc - half, self.auc + half


def delong(labels: np.ndarray, scores: np.ndarray) -> AUC:
    """The AUC of `scores` for 0/1 `labels` (NaN unless both classes have two examples)."""
    positive = labels > 0
    m = int(positive.sum())
    n = int(len(labels) - m)
    if m < 2 or n < 2:
        return AUC(math.nan, math.nan, m, n)
    # One sort gives all three midranks (among all, among positives, among negatives): a
    # tie group's midrank is the count before it plus (its size + 1) / 2, in each class.
    order = np.argsort(scores, kind="stable")
    ordered, is_pos = scores[order], positive[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    pos_sizes = np.add.reduceat(is_pos.astype(np.int64), starts)
    neg_sizes = sizes - pos_sizes
    pos_before = np.cumsum(pos_sizes) - pos_sizes
    neg_before = np.cumsum(neg_sizes) - neg_sizes
    group = np.repeat(np.arange(len(starts)), sizes)
    # a positive beats the negatives before its group and ties half of those in it
    v10 = (neg_before + neg_sizes / 2.0)[group[is_pos]] / n
    # a negative is beaten by the positives after its group and ties half of those in it
    v01 = (m - pos_before - pos_sizes / 2.0)[group[~is_pos]] / m
    auc = float(v10.mean())
    variance = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    return AUC(auc, variance, m, n)


def compare_auc(control: AUC, treatment: AUC, *, alpha: float = 0.05) -> Comparison:
    """Treatment's AUC against control's: normal intervals and z test (independent arms),
    the relative lift by the delta method, the anytime-valid interval over the examples."""
    lift = treatment.auc - control.auc
    relative = lift / control.auc if control.auc else math.nan
    variance = control.variance + treatment.variance
    if not variance > 0:
        nans = (math.nan, math.nan)
        return Comparison(
            lift, nans, math.nan, relative, nans, nans, nans, math.nan, math.inf, math.nan
        )
    se = math.sqrt(variance)
    z = float(special.ndtri(1 - alpha / 2))
    p_value = float(2 * special.ndtr(-abs(lift) / se))
    units = control.positives + control.negatives + treatment.positives + treatment.negatives
    a, b = control, treatment
    rel_var = b.variance / a.auc**2 + b.auc**2 * a.variance / a.auc**4
    rel_half = z * math.sqrt(rel_var)
    return Comparison(
        lift,
        (lift - z * se, lift + z * se),
        p_value,
        relative,
        (relative - rel_half, relative + rel_half),
        confidence_sequence(lift, variance, units, alpha),
        confidence_sequence(relative, rel_var, units, alpha),
        float(special.ndtr(lift / se)),
        math.inf,
        se,
    )
