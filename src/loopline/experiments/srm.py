"""Sample-ratio mismatch: did the arms get the share of units they were configured for?

A split sends each unit to an arm by a hash, so the units of each arm follow
the configured weights up to chance. When they do not (a treatment that
crashes for some users and logs no decision for them, a filter that drops
one arm's records), every metric of the experiment is suspect, however good
it looks. The test is Pearson's chi-square of the observed unit counts
against the counts the weights expect, with k - 1 degrees of freedom;
experimenters flag a mismatch at p < 0.001 (a strict threshold because the
test is run on every report and large experiments detect tiny imbalances).

>>> result = srm({"control": 5_000, "v2": 4_500}, {"control": 0.5, "v2": 0.5})
>>> round(result.statistic, 2), result.p_value < 0.001, result.mismatch
(26.32, True, True)
>>> srm({"control": 5_030, "v2": 4_970}, {"control": 0.5, "v2": 0.5}).mismatch
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import special

__all__ = ["THRESHOLD", "SampleRatio", "srm"]

THRESHOLD = 0.001
"""The p-value below which a sample-ratio mismatch is flagged."""


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """The chi-square test of observed against expected unit counts per arm."""

    observed: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < THRESHOLD


def srm(observed: Mapping[str, int], weights: Mapping[str, float]) -> SampleRatio:
    """The sample-ratio test of `observed` unit counts against the arms' `weights`.

    Arms of weight 0 are left out (they should have no units; any they have
    came before a change of weights). Weights are normalised over the arms kept.
    """
    arms = [arm for arm, w in weights.items() if w > 0]
    total_weight = sum(weights[a] for a in arms)
    total = sum(observed.get(a, 0) for a in arms)
    expected = {a: total * weights[a] / total_weight for a in arms}
    if total == 0 or len(arms) < 2:
        return SampleRatio(dict(observed), expected, math.nan, math.nan)
    statistic = sum((observed.get(a, 0) - expected[a]) ** 2 / expected[a] for a in arms)
    p_value = float(special.chdtrc(len(arms) - 1, statistic))
    return SampleRatio({a: observed.get(a, 0) for a in arms}, expected, statistic, p_value)
