"""The Alerts page: open alerts first, then resolved ones, each with its evidence.

An alert's evidence is its newest change on ``<app>.alerts``: the window,
the value against its baseline and limits, the rows it was computed from.
Each links to the page that shows its measure: a feature's to Features,
a freshness alert's to its topic, a model's to Models.
"""

from __future__ import annotations

from typing import Any

from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import DASH, Raw, card, iso, link, num, table
from loopline.monitor.alerts import AlertRecord

__all__ = ["alerts_body", "alerts_json"]


def _where(a: AlertRecord) -> Raw:
    if a.metric == "freshness":
        return link(f"/topics/{a.scope}", a.scope)
    if a.feature:
        return link(f"/features#{a.feature}", f"{a.scope} {a.feature}")
    return link("/models", a.scope)


def _row(a: AlertRecord, first: AlertRecord) -> list[Any]:
    return [
        Raw(f'<span class="state {a.state}">{a.state}</span>'),
        a.alert,
        _where(a),
        num(a.value),
        num(a.baseline),
        f"{num(a.low)} … {num(a.high)}",
        f"{a.rows:,}",
        f"{a.window} ending {iso(a.end)}" if a.window else DASH,
        iso(first.opened_at or first.at),
        iso(a.at),
    ]


HEAD = ["state", "alert", "where", "value", "baseline", "limits", "rows", "window", "opened",
        "last change"]  # fmt: skip


def alerts_body(ctx: Dashboard) -> str:
    everything = ctx.feed.alerts()
    open_rows, resolved_rows = [], []
    for changes in sorted(everything.values(), key=lambda c: -c[-1].at):
        (resolved_rows if changes[-1].state == "resolved" else open_rows).append(
            _row(changes[-1], changes[0])
        )
    return (
        '<div id="alerts-live" data-live="/live/alerts">'
        + card(f"Open ({len(open_rows)})", table(HEAD, open_rows, empty="no alert is open"))
        + card(
            f"Resolved ({len(resolved_rows)})",
            table(HEAD, resolved_rows[:100], empty="none resolved yet"),
        )
        + "</div>"
    )


def alerts_json(ctx: Dashboard) -> list[dict[str, Any]]:
    """Every alert's newest change (``GET /api/alerts``)."""
    import msgspec

    return [msgspec.to_builtins(c[-1]) for c in ctx.feed.alerts().values()]
