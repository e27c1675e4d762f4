"""The experiment report: per arm, per segment and by exposure age, from the log's records.

`report` reads the experiment's decisions and labelled examples
(`loopline.experiments.report_data`) and aggregates them in DuckDB
(`loopline.experiments.report_tables`):

- per arm: units (distinct units of assignment), decisions (distinct
  decision ids: delivery is at least once), exposures (decisions that returned
  something), labelled examples, p99 latency;
- per metric: each unit's mean label (``mean_label``; the acceptance rate for
  0/1 labels) and mean log loss of its examples' scores (``log_loss``, when
  labels are 0/1 and scores probabilities), so the unit is the observation
  (`loopline.experiments.statistics`); ``auc`` over the arm's examples with
  DeLong's interval (`loopline.experiments.auc`);
- every treatment against control on every metric: lifts, intervals,
  fixed-horizon p-value, anytime-valid interval, chance to beat control;
- the sample-ratio test of the units per arm against the configured weights
  (`loopline.experiments.srm`; not for bandits, whose weights move), also in
  each segment of a context field;
- per segment value: the same comparisons, their p-values adjusted across
  every segment, metric and treatment (`loopline.experiments.corrections`);
- by exposure age: the lift of the primary metric (``mean_label`` when the
  primary is not a unit metric) in each age bucket and the test of a
  declining trend (`loopline.experiments.novelty`).

The result is a plain dict of JSON values (NaN becomes None), the ``--format
json`` output of ``loopline experiments report``; the table and HTML views
render it.

>>> import pyarrow as pa
>>> from loopline.experiments.records import Arm, Experiment
>>> e = Experiment(name="e", model="m", arms=(
...     Arm("control", alias="production", weight=0.5, control=True), Arm("v2", version=2, weight=0.5)))
>>> arms, ids = ["control"] * 3 + ["v2"] * 3, list("abcdef")
>>> decisions = pa.table({"at": [0] * 6, "decision_id": ids, "arm": arms, "unit": list("uvwxyz"),
...     "latency_ms": [1.0] * 6, "returned": [1] * 6})
>>> examples = pa.table({"at": [0] * 6, "decision_id": ids, "arm": arms,
...     "label": [0.0, 1.0, 0.0, 1.0, 1.0, 0.0], "score": [0.2, 0.7, 0.4, 0.8, 0.6, 0.3]})
>>> r = build_report(e, ReportData(decisions, examples, 6, 6, 0))
>>> [(a["arm"], a["units"], round(a["metrics"]["mean_label"]["mean"], 3)) for a in r["arms"]]
[('control', 3, 0.333), ('v2', 3, 0.667)]
>>> lift = r["comparisons"][0]
>>> lift["metric"], round(lift["lift"], 3), round(lift["p_value"], 3), r["srm"]["p_value"]
('mean_label', 0.333, 0.519, 1.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import duckdb

from loopline.experiments.auc import AUC, compare_auc
from loopline.experiments.corrections import Correction, adjust
from loopline.experiments.novelty import AGE_BUCKETS, trend
from loopline.experiments.records import Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.report_data import ReportData, Segment, read_report_data
from loopline.experiments.report_tables import ReportTables
from loopline.experiments.srm import SampleRatio, srm
from loopline.experiments.statistics import Comparison, Summary, compare, mean_interval
from loopline.log import Log

__all__ = ["LOWER_IS_BETTER", "UNIT_METRICS", "build_report", "report"]

UNIT_METRICS = ("mean_label", "log_loss")
LOWER_IS_BETTER = frozenset({"log_loss"})
_ALIASES = {"acceptance_rate": "mean_label"}


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _comparison(c: Comparison, alpha: float) -> dict[str, Any]:
    return {
        "lift": c.lift,
        "interval": list(c.interval),
        "p_value": c.p_value,
        "significant": bool(c.p_value < alpha),
        "relative_lift": c.relative,
        "relative_interval": list(c.relative_interval),
        "anytime_interval": list(c.anytime_interval),
        "anytime_relative_interval": list(c.anytime_relative_interval),
        "anytime_significant": bool(c.anytime_interval[0] > 0 or c.anytime_interval[1] < 0),
        "chance_to_beat_control": c.chance_to_beat,
    }


def _srm(result: SampleRatio, since: int) -> dict[str, Any]:
    return {
        "units_first_seen_since": since or None,
        "observed": result.observed,
        "expected": result.expected,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "mismatch": result.mismatch,
    }


def _comparisons(
    experiment: Experiment,
    summaries: dict[str, Summary],
    treatment_summaries: dict[str, dict[str, Summary]],
    aucs: dict[str, AUC],
    alpha: float,
) -> list[dict[str, Any]]:
    """Every treatment against control on every metric present."""
    control = experiment.control.name
    out = []
    for arm in experiment.treatments:
        mine = treatment_summaries.get(arm.name, {})
        for metric in UNIT_METRICS:
            if metric in summaries and metric in mine:
                c = compare(
                    summaries[metric],
                    mine[metric],
                    alpha=alpha,
                    lower_is_better=metric in LOWER_IS_BETTER,
                )
                out.append({"arm": arm.name, "metric": metric} | _comparison(c, alpha))
        if control in aucs and arm.name in aucs:
            c = compare_auc(aucs[control], aucs[arm.name], alpha=alpha)
            out.append({"arm": arm.name, "metric": "auc"} | _comparison(c, alpha))
    return out


def _metrics(summaries: dict[str, Summary], auc: AUC | None, alpha: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric, s in summaries.items():
        out[metric] = {"units": s.n, "mean": s.mean, "interval": list(mean_interval(s, alpha))}
    if auc is not None:
        out["auc"] = {
            "examples": auc.positives + auc.negatives,
            "mean": auc.auc,
            "interval": list(auc.interval(alpha)) if auc.variance == auc.variance else [None, None],
            "interval_method": "DeLong",
        }
    return out


def build_report(
    experiment: Experiment,
    data: ReportData,
    segments: Sequence[Segment] = (),
    *,
    correction: Correction = "holm",
    weights_since: int = 0,
) -> dict[str, Any]:
    """The report of `experiment` from `data` (see the module docstring).

    `weights_since` (epoch ms) is when the arms' weights last changed: the sample-ratio
    test counts only the units first seen since then (0: every unit)."""
    e = experiment
    alpha = e.alpha
    primary = _ALIASES.get(e.primary, e.primary)
    guardrails = [_ALIASES.get(g.metric, g.metric) for g in e.guardrails]
    arm_names = [a.name for a in e.arms]
    with duckdb.connect() as con:
        tables = ReportTables(con, data, segments, weights_since)
        counts = tables.counts()
        summaries = tables.summaries()
        aucs = tables.aucs()
        arms = []
        for arm in e.arms:
            key = (None, arm.name)
            row = {"arm": arm.name, "control": arm.control, "weight": arm.weight}
            row |= counts.get(
                key,
                {"units": 0, "decisions": 0, "exposures": 0, "examples": 0, "latency_p99_ms": None},
            )
            row.pop("srm_units", None)
            row["metrics"] = _metrics(summaries.get(key, {}), aucs.get(key), alpha)
            arms.append(row)
        by_arm = {arm: summaries.get((None, arm), {}) for arm in arm_names}
        comparisons = _comparisons(
            e,
            by_arm[e.control.name],
            by_arm,
            {a: aucs[(None, a)] for a in arm_names if (None, a) in aucs},
            alpha,
        )
        for c in comparisons:
            c["role"] = (
                "primary"
                if c["metric"] == primary
                else "guardrail"
                if c["metric"] in guardrails
                else "secondary"
            )
        observed = {a: counts.get((None, a), {}).get("srm_units", 0) for a in arm_names}
        sample_ratio = (
            _srm(srm(observed, e.weights), weights_since) if e.policy != "bandit" else None
        )
        segment_rows = _segments(tables, e, segments, alpha, correction)
        novelty = _novelty(tables, e, primary, alpha)
    unknown = [m for m in [primary, *guardrails] if m not in (*UNIT_METRICS, "auc")]
    missing = sorted(
        {m for m in [primary, *guardrails]} - {c["metric"] for c in comparisons} - set(unknown)
    )
    return _clean(
        {
            "experiment": e.name,
            "model": e.model,
            "policy": e.policy,
            "unit": e.unit,
            "state": e.state,
            "revision": e.revision,
            "primary": primary,
            "guardrails": guardrails,
            "alpha": alpha,
            "read": {
                "decisions": data.decisions_read,
                "labelled_examples": data.examples_read,
                "decisions_without_unit": data.without_unit,
                "examples_joined": tables.examples,
            },
            "arms": arms,
            "comparisons": comparisons,
            "srm": sample_ratio,
            "correction": correction,
            "segments": segment_rows,
            "novelty": novelty,
            "notes": _notes(e, tables.examples, unknown, missing),
        }
    )


def _notes(e: Experiment, examples: int, unknown: list[str], missing: list[str]) -> list[str]:
    """What a reader must know to read the report right."""
    notes = [f"metric {m!r} is not computed from labelled examples by the report" for m in unknown]
    if not examples:
        notes.append(
            "no labelled example joins a decision of the experiment yet: the metrics need "
            "`loopline outcomes run` and closed attribution windows"
        )
    else:
        notes += [
            f"metric {m!r} could not be computed (labels not 0/1, or scores missing)"
            for m in missing
        ]
    if e.policy == "bandit":
        notes.append(
            "a bandit moves its weights over time: arms compared here saw different periods, "
            "so a lift may be partly a change over time; there is no sample-ratio test"
        )
    return notes


def _segments(
    tables: ReportTables,
    e: Experiment,
    segments: Sequence[Segment],
    alpha: float,
    correction: Correction,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    arm_names = [a.name for a in e.arms]
    for segment in segments:
        summaries = tables.summaries(segment.column)
        aucs = tables.aucs(segment.column)
        counts = tables.counts(segment.column) if segment.kind == "context" else {}
        values = sorted(
            {g for g, _ in summaries} | {g for g, _ in counts}, key=lambda v: (v is None, str(v))
        )
        for value in values:
            by_arm = {a: summaries.get((value, a), {}) for a in arm_names}
            text = None if value is None else str(value)
            arm_aucs = {a: aucs[(text, a)] for a in arm_names if (text, a) in aucs}
            row: dict[str, Any] = {"segment": segment.column, "value": value}
            row["arms"] = [
                {"arm": a}
                | {k: v for k, v in counts.get((value, a), {}).items() if k != "srm_units"}
                | {"metrics": _metrics(by_arm[a], arm_aucs.get(a), alpha)}
                for a in arm_names
            ]
            row["comparisons"] = _comparisons(e, by_arm[e.control.name], by_arm, arm_aucs, alpha)
            if segment.kind == "context" and e.policy != "bandit":
                observed = {a: counts.get((value, a), {}).get("srm_units", 0) for a in arm_names}
                row["srm"] = _srm(srm(observed, e.weights), tables.weights_since)
            else:
                row["srm"] = None  # a served feature can move with the arm: no expected ratio
            rows.append(row)
    family = [c for row in rows for c in row["comparisons"]]
    adjusted = adjust([c["p_value"] for c in family], correction)
    for c, p in zip(family, adjusted, strict=True):
        c["adjusted_p_value"] = p
        c["significant"] = bool(p < alpha)
    return rows


def _novelty(tables: ReportTables, e: Experiment, primary: str, alpha: float) -> dict[str, Any]:
    metric = (
        primary
        if primary in UNIT_METRICS and (primary != "log_loss" or tables.probabilities)
        else "mean_label"
    )
    summaries = tables.summaries("age")
    control = e.control.name
    buckets = []
    lifts: dict[str, list[tuple[float, float]]] = {a.name: [] for a in e.treatments}
    for name, _ in AGE_BUCKETS:
        base = summaries.get((name, control), {}).get(metric)
        row: dict[str, Any] = {"bucket": name, "control_units": base.n if base else 0, "arms": []}
        for arm in e.treatments:
            mine = summaries.get((name, arm.name), {}).get(metric)
            if base is None or mine is None:
                continue
            c = compare(base, mine, alpha=alpha, lower_is_better=metric in LOWER_IS_BETTER)
            lifts[arm.name].append((c.lift, c.standard_error**2))
            row["arms"].append(
                {
                    "arm": arm.name,
                    "units": mine.n,
                    "lift": c.lift,
                    "interval": list(c.interval),
                    "p_value": c.p_value,
                }
            )
        if row["arms"]:
            buckets.append(row)
    trends = {}
    for arm, points in lifts.items():
        t = trend([p[0] for p in points], [p[1] for p in points])
        trends[arm] = {
            "slope_per_bucket": t.slope,
            "standard_error": t.standard_error,
            "p_value": t.p_value,
            "buckets": t.buckets,
            "declining": bool(t.p_value < alpha),
        }
    return {"metric": metric, "buckets": buckets, "trend": trends}


def report(
    log: Log,
    app: str,
    name: str,
    segments: Sequence[Segment] = (),
    *,
    correction: Correction = "holm",
) -> dict[str, Any]:
    """The report of experiment `name` (from the registry on `log`) over application
    `app`'s decisions and labelled examples (``<app>.decisions``, ``<app>.labelled``)."""
    registry = ExperimentRegistry(log)
    try:
        history = registry.history(name)
    finally:
        registry.close()
    experiment = history[-1]
    data = read_report_data(log, app, name, experiment.unit, segments)
    return build_report(
        experiment, data, segments, correction=correction, weights_since=weights_changed(history)
    )


def weights_changed(history: Sequence[Experiment]) -> int:
    """When (epoch ms) the arms' weights last changed after the start; 0 if they never did.

    >>> from loopline.experiments.records import Arm
    >>> def rev(w, at):
    ...     return Experiment(name="e", model="m", changed_at=at, arms=(
    ...         Arm("c", alias="p", weight=1 - w, control=True), Arm("t", version=2, weight=w)))
    >>> weights_changed([rev(0.1, 100), rev(0.1, 200)]), weights_changed([rev(0.1, 100), rev(0.5, 300), rev(0.5, 400)])
    (0, 300)
    """
    since = 0
    for before, after in itertools.pairwise(history):
        if after.weights != before.weights:
            since = after.changed_at
    return since
