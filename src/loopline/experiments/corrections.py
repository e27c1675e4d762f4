"""Multiple-testing corrections: many segments and metrics, one false-alarm budget.

A report that tests 3 metrics in 10 segments runs 30 tests; at alpha 0.05
one of them is "significant" by chance more often than not. The adjusted
p-values below keep the promise for the whole family:

- ``holm`` (Holm 1979): the family-wise error rate (the chance of even one
  false alarm) stays below alpha; uniformly more powerful than Bonferroni.
- ``bh`` (Benjamini & Hochberg 1995): the false discovery rate (the expected
  share of false alarms among the flagged) stays below alpha; more power when
  many segments really differ.

NaN p-values (tests that could not run) stay NaN and do not count.

>>> p = [0.01, 0.04, 0.03, 0.005]
>>> [round(x, 3) for x in adjust(p, "holm")]
[0.03, 0.06, 0.06, 0.02]
>>> [round(x, 3) for x in adjust(p, "bh")]
[0.02, 0.04, 0.04, 0.02]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["CORRECTIONS", "Correction", "adjust"]

Correction = Literal["holm", "bh"]
CORRECTIONS: tuple[str, ...] = ("holm", "bh")


def adjust(p_values: Sequence[float], method: Correction = "holm") -> list[float]:
    """The adjusted p-values of `p_values`, in their order (`method` ``holm`` or ``bh``)."""
    values = np.asarray(p_values, dtype=float)
    kept = np.flatnonzero(~np.isnan(values))
    out = np.full(len(values), math.nan)
    m = len(kept)
    if m == 0:
        return out.tolist()
    p = values[kept]
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        scaled = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        scaled = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}: use one of {', '.join(CORRECTIONS)}")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(scaled, 1.0)
    out[kept] = adjusted
    return out.tolist()
