"""The Loop page: the application's flow, stage by stage, with records/s on every edge.

Sources → feature processor (online store) → serving → decisions →
outcomes → joiner → labelled → experiments → training → models, and back to
serving; the monitor beside it. Each stage shows the topic it writes, how
fast (records/s over the last seconds, from end offsets), how many records
and how long ago the last one arrived, and each consumer in it (the feature
processor, the outcome joiner, the experiment watcher, an online trainer,
the monitor) its lag and freshness (`loopline.dashboard.consumer_lags`); a
stage is red while an alert on it is open. The
stages refresh every two seconds (`live`); ``/api/loop`` has the same
numbers as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline.dashboard.consumer_lags import Lag
from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import DASH, ago, card, esc, link, num, table
from loopline.dashboard.series import by
from loopline.dashboard.svg import Series, line_chart
from loopline.stream import names

__all__ = ["loop_body", "loop_json", "loop_live"]


@dataclass
class Stage:
    name: str
    what: str
    topics: list[str]
    alerting: bool = False
    extra: list[tuple[str, str]] = field(default_factory=list)
    count: int | None = None  # shown instead of records/s, for a stage that writes rarely
    consumers: list[str] = field(default_factory=list)  # keys of `Dashboard.consumers`


def _stages(ctx: Dashboard) -> list[Stage]:
    app = ctx.app.name
    fingerprint = ctx.app.features.fingerprint()
    sources = ctx.app.features.sources
    changelogs = [names.features_changelog(app, fingerprint, s) for s in sources]
    alerts = ctx.feed.open_alerts()
    alerted_scopes = {a.scope for a in alerts}
    model_alert = any(":" in a.scope for a in alerts)
    decisions = ctx.feed.windows("decisions")
    latest = decisions[-1] if decisions else None
    production = []
    models = ctx.model_names()
    for name in models:
        held = ctx.models.aliases(name) if ctx.has_versions(name) else {}
        if "production" in held:
            label = "production" if len(models) == 1 else f"{name} production"
            production.append((label, f"v{held['production']}"))
    versions = sum(len(ctx.models.versions(n)) for n in ctx.model_names() if ctx.has_versions(n))
    running = sum(e.state == "running" for e in ctx.app_experiments())
    trainers = [k for k in ctx.consumers() if k.startswith("trainer ")]
    return [
        Stage("Sources", "records in", sources, bool(alerted_scopes & set(sources))),
        Stage("Features", "online store updates", changelogs, consumers=["features"]),
        Stage(
            "Serving",
            "decisions",
            [names.decisions(app)],
            model_alert,
            [("p95 latency", f"{num(latest.latency_p95, 3)} ms" if latest else DASH), *production],
        ),
        Stage("Outcomes", "outcomes", [names.outcomes(app)]),
        Stage("Joiner", "labelled examples", [names.labelled(app)], consumers=["joiner"]),
        Stage(
            "Experiments",
            "running",
            [names.experiments_changelog(app)],
            count=running,
            consumers=["experiments"],
        ),
        Stage(
            "Training", "model versions", ["_loopline_models"], count=versions, consumers=trainers
        ),
        Stage(
            "Monitor",
            "windows",
            [names.monitor(app)],
            bool(alerts),
            [("open alerts", str(len(alerts)))],
            consumers=["monitor"],
        ),
    ]


def _sum(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _lags(ctx: Dashboard, stage: Stage) -> list[tuple[str, Lag]]:
    """The stage's consumers that committed offsets, by their name on the page."""
    groups = ctx.consumers()
    found = [(k, ctx.lags.lag(groups[k])) for k in stage.consumers if k in groups]
    return [(k.removeprefix("trainer "), lag) for k, lag in found if lag is not None]


def _lag_html(stage: Stage, name: str, lag: Lag, several: bool) -> str:
    what = f" {name}" if several else ""
    fresh = "current" if not lag.records or not lag.behind else f"{ago(lag.behind)} behind"
    return (
        f'<div><dt>lag{esc(what)}</dt><dd data-lag="{esc(stage.name)}" data-group="'
        f'{esc(lag.group)}">{num(lag.records)}</dd></div>'
        f"<div><dt>freshness{esc(what)}</dt><dd>{esc(fresh)}</dd></div>"
    )


def _stage_html(ctx: Dashboard, stage: Stage, index: int) -> str:
    rate = _sum([ctx.rates.rate(t) for t in stage.topics])
    shown, unit = (
        (num(rate, 3), f"{stage.what}/s") if stage.count is None else (num(stage.count), stage.what)
    )
    total = _sum([ctx.rates.total(t) for t in stage.topics])
    idle = [ctx.rates.idle(t) for t in stage.topics]
    fresh = min((i for i in idle if i is not None), default=None)
    rows = "".join(
        f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>"
        for k, v in [("records", num(total)), ("last record", f"{ago(fresh)} ago"), *stage.extra]
    )
    lags = _lags(ctx, stage)
    rows += "".join(_lag_html(stage, n, lag, len(lags) > 1) for n, lag in lags)
    topics = ", ".join(esc(t) for t in stage.topics) or DASH
    cls = "stage alert" if stage.alerting else "stage"
    arrow = '<div class="arrow" aria-hidden="true"></div>' if index else ""
    return (
        f'{arrow}<div class="{cls}" data-stage="{esc(stage.name)}"><h3>{esc(stage.name)}</h3>'
        f'<p class="rate"><span class="value" data-rate="{esc(stage.name)}">{shown}</span>'
        f' <span class="unit">{esc(unit)}</span></p><dl>{rows}</dl>'
        f'<p class="topic" title="{topics}">{topics}</p></div>'
    )


def loop_live(ctx: Dashboard) -> str:
    """The part of the page that refreshes: the stages and the traffic chart."""
    stages = _stages(ctx)
    flow = "".join(_stage_html(ctx, s, i) for i, s in enumerate(stages))
    app = ctx.app.name
    traffic = [
        Series(label, ctx.rates.history(topic))
        for label, topic in (
            ("decisions/s", names.decisions(app)),
            ("outcomes/s", names.outcomes(app)),
            ("labelled/s", names.labelled(app)),
        )
    ]
    chart = line_chart(traffic, title="records per second", y_min=0)
    decided = ctx.feed.windows("decisions")
    latency = line_chart(
        by(lambda r: f"v{r.model_version} p95", decided, "latency_p95", weight="decisions"),
        title="latency p95 (ms) per version, from the monitor",
        y_min=0,
    )
    return (
        f'<div class="flow">{flow}<div class="loopback">↺ serving follows the models topic: '
        "a new production version answers without a restart</div></div>"
        f'<div class="grid">{card("Traffic", chart)}{card("Latency", latency)}</div>'
    )


def loop_body(ctx: Dashboard) -> str:
    """The whole Loop page body."""
    rows = []
    for topic in ctx.rates.topics():
        rows.append(
            [
                link(f"/topics/{topic}", topic),
                num(ctx.rates.rate(topic), 3),
                num(ctx.rates.total(topic)),
                ago(ctx.rates.idle(topic)),
            ]
        )
    return f'<div id="loop-live" data-live="/live/loop">{loop_live(ctx)}</div>' + card(
        "Topics",
        table(["topic", "records/s", "records", "last record"], rows, empty="no topics yet"),
    )


def loop_json(ctx: Dashboard) -> dict[str, Any]:
    """The Loop page's numbers for programs (``GET /api/loop``)."""
    return {
        "app": ctx.app.name,
        "stages": [
            {
                "name": s.name,
                "topics": s.topics,
                "records_per_s": _sum([ctx.rates.rate(t) for t in s.topics]),
                "records": _sum([ctx.rates.total(t) for t in s.topics]),
                "alerting": s.alerting,
                "consumers": [
                    {"group": lag.group, "lag": lag.records, "behind_seconds": lag.behind}
                    for _, lag in _lags(ctx, s)
                ],
            }
            for s in _stages(ctx)
        ],
        "open_alerts": len(ctx.feed.open_alerts()),
    }
