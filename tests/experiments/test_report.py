"""`loopline experiments report` on both backends: its numbers equal scipy's, statsmodels' and
scikit-learn's computed from the very records the test wrote; a lost tenth of an arm is an SRM."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments.simulated import simulate
from loopline.cli import cli
from loopline.experiments.sequential import confidence_sequence

TOL = 1e-6


def run_report(url: str, sim, *args: str) -> dict:
    result = CliRunner().invoke(
        cli,
        [
            "--log",
            url,
            "experiments",
            "report",
            sim.experiment.name,
            "--app",
            sim.app,
            "--format",
            "json",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def per_unit(examples: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    examples = examples.assign(
        ll=-(
            examples.label * np.log(examples.score)
            + (1 - examples.label) * np.log(1 - examples.score)
        )
    )
    return examples.groupby([*by, "arm", "unit"])[["label", "ll"]].mean().reset_index()


def check_comparison(got: dict, control: np.ndarray, treatment: np.ndarray) -> None:
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert got["p_value"] == pytest.approx(welch.pvalue, abs=TOL)
    interval = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(
        usevar="unequal"
    )
    assert got["interval"] == pytest.approx(list(interval), abs=TOL)
    assert got["lift"] == pytest.approx(treatment.mean() - control.mean(), abs=TOL)
    # the rest from the raw values: delta-method relative lift, the anytime-valid interval
    # (GrowthBook's construction, checked against gbstats in test_sequential), P(beat)
    vc, vt = control.var(ddof=1) / len(control), treatment.var(ddof=1) / len(treatment)
    lift, ratio = treatment.mean() - control.mean(), treatment.mean() / control.mean()
    se_rel = np.sqrt(vt / control.mean() ** 2 + ratio**2 * vc / control.mean() ** 2)
    z = stats.norm.ppf(0.975)
    assert got["relative_lift"] == pytest.approx(ratio - 1, abs=TOL)
    assert got["relative_interval"] == pytest.approx(
        [ratio - 1 - z * se_rel, ratio - 1 + z * se_rel], abs=TOL
    )
    units = len(control) + len(treatment)
    assert got["anytime_interval"] == pytest.approx(
        list(confidence_sequence(lift, vc + vt, units)), abs=TOL
    )
    beat = stats.norm.cdf(lift / np.sqrt(vc + vt))
    lower_is_better = got["metric"] == "log_loss"
    assert got["chance_to_beat_control"] == pytest.approx(
        1 - beat if lower_is_better else beat, abs=TOL
    )


def test_report_numbers_equal_scipy_on_the_records_written(log, log_url):
    sim = simulate(log, units=500, rate={"control": 0.2, "v2": 0.26}, novelty=0.1)
    report = run_report(log_url, sim, "--segment", "page")
    decisions = pd.DataFrame(sim.decisions)
    examples = pd.DataFrame(sim.examples)
    units = per_unit(examples, [])

    arms = {a["arm"]: a for a in report["arms"]}
    for arm in ("control", "v2"):
        mine = decisions[decisions.arm == arm]
        assert arms[arm]["units"] == mine.unit.nunique()
        assert arms[arm]["decisions"] == arms[arm]["exposures"] == len(mine)
        values = units[units.arm == arm].label.to_numpy()
        metric = arms[arm]["metrics"]["mean_label"]
        assert metric["mean"] == pytest.approx(values.mean(), abs=TOL)
        assert metric["interval"] == pytest.approx(
            list(DescrStatsW(values).tconfint_mean()), abs=TOL
        )
        ex = examples[examples.arm == arm]
        assert arms[arm]["metrics"]["auc"]["mean"] == pytest.approx(
            roc_auc_score(ex.label, ex.score), abs=TOL
        )

    comparisons = {c["metric"]: c for c in report["comparisons"]}
    for metric, column in (("mean_label", "label"), ("log_loss", "ll")):
        control = units[units.arm == "control"][column].to_numpy()
        treatment = units[units.arm == "v2"][column].to_numpy()
        check_comparison(comparisons[metric], control, treatment)
    assert comparisons["mean_label"]["role"] == "primary"

    observed = [decisions[decisions.arm == a].unit.nunique() for a in ("control", "v2")]
    assert report["srm"]["p_value"] == pytest.approx(stats.chisquare(observed).pvalue, abs=TOL)

    # segments: the same per page, p-values Holm-adjusted across pages and metrics
    by_page = per_unit(examples, ["page"])
    family, got = [], []
    for row in report["segments"]:
        page = by_page[by_page.page == row["value"]]
        for c in row["comparisons"]:
            if c["metric"] == "auc":
                ex = examples[examples.page == row["value"]]
                delong_p = c[
                    "p_value"
                ]  # DeLong, checked against the pairwise definition in test_statistics
                assert c["lift"] == pytest.approx(
                    roc_auc_score(ex[ex.arm == "v2"].label, ex[ex.arm == "v2"].score)
                    - roc_auc_score(ex[ex.arm == "control"].label, ex[ex.arm == "control"].score),
                    abs=TOL,
                )
                family.append(delong_p)
            else:
                column = "label" if c["metric"] == "mean_label" else "ll"
                control = page[page.arm == "control"][column].to_numpy()
                treatment = page[page.arm == "v2"][column].to_numpy()
                check_comparison(c, control, treatment)
                family.append(stats.ttest_ind(treatment, control, equal_var=False).pvalue)
            got.append(c["adjusted_p_value"])
    assert len(family) == 9  # 3 pages x 3 metrics
    assert got == pytest.approx(list(multipletests(family, method="holm")[1]), abs=TOL)

    # novelty: the treatment's early lift shows in the first bucket, and the trend is computed
    first = report["novelty"]["buckets"][0]
    assert first["bucket"] == "0-1h" and first["arms"][0]["lift"] > 0
    assert report["novelty"]["trend"]["v2"]["buckets"] >= 3


@pytest.mark.parametrize("drop", [None, ("v2", 0.1)])
def test_srm_flags_a_tenth_of_one_arm_lost_and_not_an_honest_run(tmp_path, drop):
    from loopline.log import open_log

    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    sim = simulate(log, units=10_000, per_unit=(1, 1), drop=drop, seed=3)
    log.close()
    report = run_report(url, sim)
    assert report["srm"]["mismatch"] is (drop is not None)
    if drop:
        assert report["srm"]["p_value"] < 0.001


def test_a_missing_experiment_or_app_is_an_error_saying_what_to_do(tmp_path):
    from loopline.log import open_log

    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    sim = simulate(log, units=20)
    log.close()
    runner = CliRunner()
    missing = runner.invoke(cli, ["--log", url, "experiments", "report", "nope", "--app", sim.app])
    assert missing.exit_code == 1 and "no experiment 'nope'" in missing.output
    wrong = runner.invoke(
        cli, ["--log", url, "experiments", "report", sim.experiment.name, "--app", "shop"]
    )
    assert wrong.exit_code == 1 and "'shop.decisions' does not exist" in wrong.output
    page = runner.invoke(
        cli,
        [
            "--log",
            url,
            "experiments",
            "report",
            sim.experiment.name,
            "--app",
            sim.app,
            "--format",
            "html",
        ],
    )
    assert (
        page.exit_code == 0 and page.output.startswith("<!doctype html>") and "<svg" in page.output
    )


def test_a_context_unit_with_benjamini_hochberg_across_segments(tmp_path):
    from loopline.log import open_log

    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    sim = simulate(log, units=600, unit_field="context.session", rate={"control": 0.2, "v2": 0.3})
    log.close()
    report = run_report(url, sim, "--segment", "context.page", "--correction", "bh")
    decisions = pd.DataFrame(sim.decisions)
    for arm in report["arms"]:  # units are sessions, not the members who had them
        assert arm["units"] == decisions[decisions.arm == arm["arm"]].unit.nunique()
    by_page = per_unit(pd.DataFrame(sim.examples), ["page"])
    family, got = [], []
    for row in report["segments"]:
        page = by_page[by_page.page == row["value"]]
        for c in row["comparisons"]:
            if c["metric"] == "auc":
                family.append(c["p_value"])
            else:
                column = "label" if c["metric"] == "mean_label" else "ll"
                control = page[page.arm == "control"][column].to_numpy()
                treatment = page[page.arm == "v2"][column].to_numpy()
                family.append(stats.ttest_ind(treatment, control, equal_var=False).pvalue)
            got.append(c["adjusted_p_value"])
    assert report["correction"] == "bh" and len(family) == 9
    assert got == pytest.approx(list(multipletests(family, method="fdr_bh")[1]), abs=TOL)
    assert all(row["srm"]["mismatch"] is False for row in report["segments"])


def test_srm_counts_only_the_units_assigned_since_the_weights_last_changed(tmp_path):
    import time

    from loopline.experiments.registry import ExperimentRegistry
    from loopline.log import open_log

    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    hour = 3_600_000
    now = int(time.time() * 1000)
    before = simulate(log, units=3000, per_unit=(1, 1), control_weight=0.9, start=now - 10 * hour)
    registry = ExperimentRegistry(log)
    registry.set_weights(before.experiment.name, {"control": 0.5, "v2": 0.5}, reason="ramp")
    registry.close()
    later = int(time.time() * 1000) + 1000
    simulate(log, units=3000, per_unit=(1, 1), start=later, spread=60_000, then=before, seed=2)
    log.close()
    report = run_report(url, before)
    assert sum(a["units"] for a in report["arms"]) == 6000
    srm = report["srm"]  # 90/10 before the ramp, 50/50 after: only the latter are tested
    assert sum(srm["observed"].values()) == 3000 and srm["units_first_seen_since"] > now
    assert srm["mismatch"] is False
