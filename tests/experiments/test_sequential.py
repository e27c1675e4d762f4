"""The anytime-valid test agrees with GrowthBook's and keeps its promise under peeking."""

import math
import random

import pytest
from scipy import stats

from loopline.experiments.sequential import confidence_sequence, sequential_p_value

# Printed by gbstats 0.8.0 (SequentialTwoSidedTTest, difference_type="absolute", alpha 0.05,
# tuning 5000) for control 100/1000 and treatment 130/1000 conversions. gbstats pins
# numpy < 2, so it cannot be installed beside loopline; its figures are kept here.
GBSTATS = {"interval": (-0.014540237791478755, 0.07454023779147875), "p": 0.37957050462324404}


def test_agrees_with_gbstats():
    a_mean, b_mean, n = 0.1, 0.13, 1000
    var_a = (100 - 100**2 / n) / (n - 1)  # gbstats' sample variance of 0/1 values
    var_b = (130 - 130**2 / n) / (n - 1)
    variance = var_a / n + var_b / n
    low, high = confidence_sequence(b_mean - a_mean, variance, 2 * n)
    assert low == pytest.approx(GBSTATS["interval"][0], abs=1e-12)
    assert high == pytest.approx(GBSTATS["interval"][1], abs=1e-12)
    assert sequential_p_value(b_mean - a_mean, variance, 2 * n) == pytest.approx(
        GBSTATS["p"], abs=1e-12
    )


def test_it_is_wider_than_the_fixed_horizon_interval_at_every_size():
    z = stats.norm.ppf(0.975)
    for units in (100, 1_000, 5_000, 100_000):
        variance = 0.5 / units
        low, high = confidence_sequence(0.0, variance, units)
        assert high > z * math.sqrt(variance)
        assert low == -high


def test_peeking_after_every_100_outcomes_keeps_false_alarms_under_alpha():
    rng = random.Random(7)
    alarms = 0
    for _ in range(200):  # A/A: both arms accept 20% of the time
        counts = {"a": [0, 0], "b": [0, 0]}
        for i in range(1, 4001):
            arm = counts["a" if i % 2 else "b"]
            arm[0] += 1
            arm[1] += rng.random() < 0.2
            if i % 100:
                continue
            (na, sa), (nb, sb) = counts["a"], counts["b"]
            ma, mb = sa / na, sb / nb
            variance = ma * (1 - ma) / na + mb * (1 - mb) / nb
            low, high = confidence_sequence(mb - ma, variance, na + nb)
            if low > 0 or high < 0:
                alarms += 1
                break
    assert alarms <= 10  # at most 5% of 200
