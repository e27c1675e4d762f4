"""The Experiments page: each experiment's arms, traffic share and metrics over time, its
verdict, the report's lift by exposure age and segment table
(`loopline.dashboard.page_report`), and every change of its history
(rollbacks with their evidence).

Traffic share and the primary metric per arm come from the monitor's
windows of the experiment's model (keyed by arm); the arms, weights,
guardrails, verdict and revisions from the experiment registry. An
experiment can be started here (as ``loopline experiments start``, through
the same `loopline.experiments.start.start`) and a running one stopped (as
``loopline experiments stop``).
"""

from __future__ import annotations

import time
from collections import defaultdict

from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import DASH, card, esc, form, iso, link, num, table
from loopline.dashboard.page_report import report_part
from loopline.dashboard.series import by, step
from loopline.dashboard.svg import Series, line_chart
from loopline.experiments.records import METRICS, Experiment

__all__ = ["experiment_body", "experiments_body"]


def _arm(a) -> str:
    target = f"v{a.version}" if a.version is not None else f"alias {a.alias}"
    return f"{a.name}{' (control)' if a.control else ''}: {target}, weight {num(a.weight, 3)}"


SHOWN = 4  # experiments drawn on the list page, running ones first, newest first


def _start_form(ctx: Dashboard, csrf: str) -> str:
    """``loopline experiments start`` as a form: the same options, the same checks."""
    models = ctx.model_names()
    if not models:
        return '<p class="muted">the application declares no model: nothing to experiment on</p>'
    held = ctx.models.versions(models[0]) if ctx.has_versions(models[0]) else []
    newest = max((v.version for v in held), default=2)
    choices = "".join(f'<option value="{esc(m)}">{esc(m)}</option>' for m in models)
    policies = "".join(f"<option>{p}</option>" for p in ("split", "bandit", "canary"))
    metrics = "".join(f"<option>{m}</option>" for m in METRICS)
    fields = (
        '<label>name <input name="experiment" size="20" required'
        ' placeholder="ranker-v7"></label>'
        f'<label>model <select name="model">{choices}</select></label>'
        "<label>arms, one a line, the control first (NAME=version:N or NAME=alias:A)"
        f'<textarea name="arms" rows="2" cols="28" required>control=alias:production\n'
        f"v{newest}=version:{newest}</textarea></label>"
        '<label>weights <input name="weights" size="12" placeholder="equal: 0.5,0.5"></label>'
        f'<label>policy <select name="policy">{policies}</select></label>'
        '<label>ramp (canary) <input name="ramp" size="16" placeholder="0.01,0.05,0.25,0.5">'
        "</label>"
        '<label>unit <input name="unit" size="12" value="entity"></label>'
        f'<label>primary <select name="primary">{metrics}</select></label>'
        '<label>guardrails <input name="guardrails" size="18" placeholder="mean_label:0.1">'
        "</label>"
        '<label class="check"><input type="checkbox" name="auto_conclude"> auto-conclude</label>'
        '<label>reason <input name="reason" size="18" value="started"></label>'
        '<details><summary>more</summary><div class="more">'
        '<label>alpha <input name="alpha" size="5" value="0.05"></label>'
        '<label>bandit floor <input name="floor" size="5" value="0.05"></label>'
        '<label>units per ramp step <input name="ramp_every" size="6" value="500"></label>'
        "</div></details>"
    )
    return form(
        "/actions/start-experiment",
        csrf,
        fields,
        "Start experiment",
        confirm="Start it? Serving routes requests by it within a second.",
    )


def experiments_body(ctx: Dashboard, csrf: str) -> str:
    experiments = ctx.app_experiments()
    rows = [
        [
            link(f"/experiments/{e.name}", e.name),
            e.model,
            e.state.replace("_", " "),
            "; ".join(_arm(a) for a in e.arms),
            e.policy,
            e.primary,
            (f"{e.verdict.arm}: {num(e.verdict.estimate)} [{num(e.verdict.low)}, "
             f"{num(e.verdict.high)}]") if e.verdict else DASH,
            iso(e.changed_at),
            e.reason,
        ]
        for e in experiments
    ]  # fmt: skip
    drawn = "".join(_summary(ctx, e) for e in experiments[:SHOWN])
    return (
        drawn
        + card(
            "Experiments",
            table(
                ["name", "model", "state", "arms", "policy", "primary", "verdict", "changed",
                 "reason"],
                rows,
                empty="no experiment on this application's models yet",
            ),
        )
        + card("Start an experiment (as loopline experiments start)", _start_form(ctx, csrf),
               anchor="start")
    )  # fmt: skip


def _summary(ctx: Dashboard, e: Experiment) -> str:
    """An experiment at a glance: its arms' traffic share and primary metric over time."""
    arms = {a.name for a in e.arms}
    labelled = ctx.feed.windows("labelled", where=lambda r: r.model == e.model and r.arm in arms)
    charts = "".join(
        (
            line_chart(_share(ctx, e, arms), title="traffic share per arm", y_min=0),
            line_chart(
                by(lambda r: r.arm, labelled, "label_mean", weight="labels"),
                title="mean label (acceptance) per arm",
            ),
        )
    )
    state = e.state.replace("_", " ")
    head = f'<p class="muted">{esc(state)} · {esc(e.policy)} · {esc(e.reason)}</p>'
    return card(e.name, head + f'<div class="grid small">{charts}</div>', cls="experiment")


def _share(ctx: Dashboard, e: Experiment, arms: set[str]) -> list[Series]:
    windows = ctx.feed.windows("decisions", where=lambda r: r.model == e.model and r.arm in arms)
    totals: dict[int, int] = defaultdict(int)
    for r in windows:
        totals[r.end] += r.decisions
    counts = by(lambda r: r.arm, windows, "decisions")
    return [
        Series(s.name, [(end, n / totals[end]) for end, n in s.points if totals[end]])
        for s in counts
    ]


def _weights(history: list[Experiment], until_ms: int) -> list[Series]:
    """Each arm's weight as the registry set it: a step at every revision."""
    names = sorted({a.name for e in history for a in e.arms})
    return [
        Series(
            f"{n} weight",
            step([(e.changed_at, e.weights.get(n, 0.0)) for e in history], until_ms),
            dashed=True,
        )
        for n in names
    ]


def _until(ctx: Dashboard, e: Experiment, history: list[Experiment]) -> int:
    """Where the weight lines end: now for a running experiment, else its last change."""
    return int(time.time() * 1000) if e.state == "running" else history[-1].changed_at


def experiment_body(ctx: Dashboard, e: Experiment, csrf: str) -> str:
    history = ctx.experiments.history(e.name)
    arms = {a.name for a in e.arms}
    labelled = ctx.feed.windows("labelled", where=lambda r: r.model == e.model and r.arm in arms)
    primary = line_chart(
        by(lambda r: r.arm, labelled, "label_mean", weight="labels"),
        title="mean label (acceptance) per arm",
    )
    auc = line_chart(by(lambda r: r.arm, labelled, "auc", weight="scored"), title="AUC per arm")
    share = line_chart(
        _share(ctx, e, arms) + _weights(history, _until(ctx, e, history)),
        title="traffic share per arm",
        y_min=0,
    )
    about = table(
        ["", ""],
        [
            ["model", link("/models", e.model)],
            ["state", e.state.replace("_", " ")],
            ["policy", f"{e.policy}, unit {e.unit}, floor {num(e.floor)}"],
            ["primary metric", e.primary],
            ["guardrails", ", ".join(f"{g.metric} (margin {num(g.margin)})" for g in e.guardrails)
             or DASH],
            ["verdict", (f"{e.verdict.arm}: {e.verdict.metric} {num(e.verdict.estimate)} "
                         f"[{num(e.verdict.low)}, {num(e.verdict.high)}], {e.verdict.units:,} "
                         "units") if e.verdict else "none yet"],
            ["reason", e.reason],
        ],
    )  # fmt: skip
    arms_table = table(
        ["arm", "control", "version", "alias", "weight"],
        [
            [a.name, "yes" if a.control else "", a.version, a.alias, num(a.weight, 3)]
            for a in e.arms
        ],
    )
    revisions = table(
        ["revision", "time", "state", "arms", "by", "reason / evidence"],
        [
            [r.revision, iso(r.changed_at), r.state.replace("_", " "),
             "; ".join(_arm(a) for a in r.arms), r.by, r.reason]
            for r in reversed(history)
        ],
    )  # fmt: skip
    stop = ""
    if e.state == "running":
        stop = form(
            "/actions/stop-experiment",
            csrf,
            f'<input type="hidden" name="experiment" value="{esc(e.name)}">'
            '<label>reason <input name="reason" size="24" required></label>',
            "Stop experiment",
            confirm="Stop it? Every request is answered by the alias again.",
        )
    return (
        '<div class="grid">'
        + card("Experiment", about + stop)
        + card("Arms", arms_table)
        + card("Traffic share", share)
        + card("Primary metric", primary)
        + card("AUC", auc)
        + "</div>"
        + report_part(ctx, e)
        + card("History (rollbacks with their evidence)", revisions)
    )
