"""Model quality from labelled examples: log loss, AUC and expected calibration error.

Each takes the scores and labels of one window (labels 0/1; a label above 0
counts as positive for AUC) and returns None where the measure does not
exist for that window (no rows, one class only for AUC, scores outside
[0, 1] for log loss and calibration), so a small or one-sided window says
so instead of showing a number that is not one.

- `log_loss`: the mean of ``-(y ln p + (1 - y) ln(1 - p))``, p clipped to
  ``[1e-15, 1 - 1e-15]`` (scikit-learn's ``log_loss``).
- `auc`: the area under the ROC curve, the Mann-Whitney statistic with ties
  counted half (scikit-learn's ``roc_auc_score``).
- `calibration_error`: the expected calibration error over `bins`
  equal-width score bins on [0, 1]: ``sum(n_b / n * |mean(y_b) - mean(p_b)|)``
  (a score of exactly 1 falls in the last bin).

>>> scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
>>> auc(scores, labels)
0.75
>>> round(log_loss(scores, labels), 6)
0.472288
>>> round(calibration_error([0.05, 0.15, 0.95], [0, 1, 1]), 6)
0.316667
>>> auc([0.5, 0.6], [1, 1]) is None  # one class: no AUC
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["auc", "calibration_error", "log_loss"]

CLIP = 1e-15


def _pair(scores: Sequence[float], labels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)


def _probabilities(p: np.ndarray, y: np.ndarray) -> bool:
    return bool(p.size) and bool(np.all((p >= 0) & (p <= 1))) and bool(np.all((y >= 0) & (y <= 1)))


def log_loss(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """The mean log loss of `scores` (probabilities) against `labels` (0/1)."""
    p, y = _pair(scores, labels)
    if not _probabilities(p, y):
        return None
    p = np.clip(p, CLIP, 1 - CLIP)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def auc(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """The ROC AUC of `scores` for `labels` (positive: above 0); None with one class."""
    s, y = _pair(scores, labels)
    positive = y > 0
    n_pos = int(positive.sum())
    n_neg = int(s.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranked = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # Average ranks of ties: each run of equal scores gets the mean of its positions.
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], s.size]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def calibration_error(
    scores: Sequence[float], labels: Sequence[float], bins: int = 10
) -> float | None:
    """The expected calibration error of `scores` (probabilities) over `bins` equal bins."""
    p, y = _pair(scores, labels)
    if not _probabilities(p, y):
        return None
    index = np.minimum((p * bins).astype(np.int64), bins - 1)

    gap = np.abs(np.bincount(index, y, bins) - np.bincount(index, p, bins))
    return float(np.sum(gap) / p.size)
