"""The report's statistics equal scipy's and statsmodels' on the same data, to 1e-6, and keep
their promises: A/A experiments rarely flag, a lost tenth of an arm is an SRM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.regression.linear_model import WLS
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW
from statsmodels.tools import add_constant

from loopline.experiments.auc import compare_auc, delong
from loopline.experiments.corrections import adjust
from loopline.experiments.novelty import trend
from loopline.experiments.srm import srm
from loopline.experiments.statistics import compare, mean_interval, summarize

TOL = 1e-6


def arms(seed: int, n_a: int = 700, n_b: int = 900, lift: float = 0.03):
    rng = np.random.default_rng(seed)
    return rng.binomial(1, 0.2, n_a).astype(float), rng.binomial(1, 0.2 + lift, n_b).astype(float)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_welch_lift_interval_and_p_value_equal_scipy_and_statsmodels(seed):
    a, b = arms(seed)
    c = compare(summarize(a), summarize(b))
    welch = stats.ttest_ind(b, a, equal_var=False)
    assert c.p_value == pytest.approx(welch.pvalue, abs=TOL)
    low, high = CompareMeans(DescrStatsW(b), DescrStatsW(a)).tconfint_diff(usevar="unequal")
    assert c.interval == pytest.approx((low, high), abs=TOL)
    assert c.lift == pytest.approx(b.mean() - a.mean(), abs=TOL)
    # per-arm means and their t intervals
    assert mean_interval(summarize(a)) == pytest.approx(DescrStatsW(a).tconfint_mean(), abs=TOL)
    # relative lift by the delta method, the formula written out again from the raw values
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    ratio = b.mean() / a.mean()
    se = np.sqrt(vb / a.mean() ** 2 + ratio**2 * va / a.mean() ** 2)
    z = stats.norm.ppf(0.975)
    assert c.relative == pytest.approx(ratio - 1, abs=TOL)
    assert c.relative_interval == pytest.approx((ratio - 1 - z * se, ratio - 1 + z * se), abs=TOL)
    # chance to beat control: the normal posterior of the difference under a flat prior
    assert c.chance_to_beat == pytest.approx(
        stats.norm.sf(0, loc=b.mean() - a.mean(), scale=np.sqrt(va + vb)), abs=TOL
    )


def test_a_lower_is_better_metric_beats_control_when_it_falls():
    a, b = arms(4, lift=-0.05)
    assert compare(summarize(a), summarize(b), lower_is_better=True).chance_to_beat > 0.95


def a_a_flags(seed: int, experiments: int, units: int = 1000) -> int:
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(experiments):
        a = rng.binomial(1, 0.2, units).astype(float)
        b = rng.binomial(1, 0.2, units).astype(float)
        flagged += compare(summarize(a), summarize(b)).p_value < 0.05
    return flagged


def test_two_hundred_a_a_experiments_flag_at_most_five_percent():
    # A test of size 5% flags Binomial(200, 0.05) of 200 A/A experiments: at most 10 in only
    # 58% of seeds. Seeds 0-19 flagged 9 10 17 7 13 9 10 13 14 6 9 7 10 16 10 13 9 13 11 9
    # (12 of 20 at most 10; 5.4% of all 4000), as a calibrated test should; this is seed 0.
    # The calibration test below is the real evidence.
    assert a_a_flags(0, 200) <= 10


def test_a_a_false_alarm_rate_is_five_percent_over_four_thousand_experiments():
    rate = a_a_flags(99, 4000, units=400) / 4000
    assert abs(rate - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 4000)  # within 3 standard errors


def test_srm_equals_scipy_chisquare_and_flags_a_tenth_of_an_arm_lost():
    rng = np.random.default_rng(5)
    units = rng.random(20_000) < 0.5  # honest 50/50 assignment
    honest = {"control": int(units.sum()), "v2": int((~units).sum())}
    result = srm(honest, {"control": 0.5, "v2": 0.5})
    expected = stats.chisquare([honest["control"], honest["v2"]])
    assert result.statistic == pytest.approx(expected.statistic, abs=TOL)
    assert result.p_value == pytest.approx(expected.pvalue, abs=TOL)
    assert not result.mismatch
    lost = {"control": honest["control"], "v2": int(honest["v2"] * 0.9)}
    assert srm(lost, {"control": 0.5, "v2": 0.5}).p_value < 0.001
    weighted = srm({"a": 900, "b": 120}, {"a": 0.9, "b": 0.1})
    reference = stats.chisquare([900, 120], [1020 * 0.9, 1020 * 0.1])
    assert weighted.p_value == pytest.approx(reference.pvalue, abs=TOL)


@pytest.mark.parametrize("method,name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_equal_statsmodels(method, name):
    p = np.random.default_rng(9).random(37) ** 3
    assert adjust(list(p), method) == pytest.approx(list(multipletests(p, method=name)[1]), abs=TOL)
    with_nan = [0.01, float("nan"), 0.04]
    assert adjust(with_nan, method)[1] != adjust(with_nan, method)[1]  # NaN stays NaN


def test_delong_auc_equals_sklearn_and_the_pairwise_definition():
    rng = np.random.default_rng(11)
    labels = rng.binomial(1, 0.3, 400)
    scores = np.round(rng.random(400) + 0.3 * labels, 2)  # rounded: ties count half
    a = delong(labels, scores)
    assert a.auc == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    variance = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    assert a.variance == pytest.approx(variance, abs=TOL)
    other = delong(labels[:200], scores[:200])
    c = compare_auc(other, a)
    se = np.sqrt(a.variance + other.variance)
    assert c.p_value == pytest.approx(2 * stats.norm.sf(abs(a.auc - other.auc) / se), abs=TOL)


def test_novelty_trend_equals_statsmodels_weighted_least_squares():
    lifts = np.array([0.09, 0.07, 0.04, 0.05, 0.01])
    variances = np.array([0.0002, 0.0003, 0.0001, 0.0004, 0.0002])
    t = trend(lifts, variances)
    fit = WLS(lifts, add_constant(np.arange(5.0)), weights=1 / variances).fit(
        cov_type="fixed scale"
    )
    assert t.slope == pytest.approx(fit.params[1], abs=TOL)
    assert t.standard_error == pytest.approx(fit.bse[1], abs=TOL)
    assert t.p_value == pytest.approx(stats.norm.cdf(fit.tvalues[1]), abs=TOL)
    assert t.p_value < 0.05
    flat = trend([0.03, 0.05, 0.02, 0.04], [0.0004] * 4)
    assert flat.p_value > 0.05
