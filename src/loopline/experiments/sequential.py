"""An anytime-valid test of a difference: look after every outcome without inflating false alarms.

A fixed-horizon test (a t-test read once, at a sample size chosen in advance)
raises false alarms far above its alpha when it is read again and again as
data arrives. The guardrails watch experiments continuously, so they use an
asymptotic *confidence sequence* instead (Waudby-Smith et al., "Time-uniform
central limit theory and asymptotic confidence sequences", eq. 9): an interval
for the difference that holds, with probability 1 - alpha, at every sample
size at once. Its mixture parameter rho is tuned for `tuning` total units
(eq. 161), the same construction and default as GrowthBook's sequential
testing, which the tests cross-check it against.

`difference` is the treatment's estimate minus control's (or a relative
lift), `variance` the variance of that estimate (var_a / n_a + var_b / n_b for
means), `units` the units of both arms together.

>>> low, high = confidence_sequence(0.02, 0.0001, 2_000)
>>> round(low, 4), round(high, 4)
(-0.0112, 0.0512)
>>> lo, hi = 0.02 - 1.96 * 0.01, 0.02 + 1.96 * 0.01   # the fixed-horizon interval is narrower
>>> lo > low and hi < high
True
>>> round(sequential_p_value(0.02, 0.0001, 2_000), 4)   # a fixed-horizon test says 0.0455
0.4465
"""

from __future__ import annotations

import math

__all__ = ["TUNING", "confidence_sequence", "rho", "sequential_p_value"]

TUNING = 5000.0
"""The total units the confidence sequence is tightest for (GrowthBook's default)."""


def rho(alpha: float = 0.05, tuning: float = TUNING) -> float:
    """The mixture parameter that makes the sequence tightest at `tuning` units."""
    return math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)


def confidence_sequence(
    difference: float,
    variance: float,
    units: int,
    alpha: float = 0.05,
    tuning: float = TUNING,
) -> tuple[float, float]:
    """The anytime-valid 1 - `alpha` interval for `difference` after `units` units."""
    if units <= 0 or not variance > 0:
        return -math.inf, math.inf
    r2 = rho(alpha, tuning) ** 2
    s2 = variance * units
    width = math.sqrt(s2) * math.sqrt(
        2 * (units * r2 + 1) * math.log(math.sqrt(units * r2 + 1) / alpha) / (units**2 * r2)
    )
    return difference - width, difference + width


def sequential_p_value(
    difference: float,
    variance: float,
    units: int,
    alpha: float = 0.05,
    tuning: float = TUNING,
    null: float = 0.0,
) -> float:
    """The anytime-valid p-value of `difference` against `null` (1 / the mixture e-value)."""
    if units <= 0 or not variance > 0:
        return 1.0
    r2 = rho(alpha, tuning) ** 2
    st2 = (difference - null) ** 2 * units / variance
    tr2p1 = units * r2 + 1
    log_e = r2 * st2 / (2 * tr2p1) - 0.5 * math.log(tr2p1)
    return 1.0 if log_e <= 0 else math.exp(-log_e)
