"""What ``loopline demo`` shows: a live view while it runs, and a summary at the end.

>>> from loopline.demo.stats import DemoStats, VersionStats
>>> stats = DemoStats("demo-1", "embedded:/tmp/x", 60.0)
>>> stats.versions = {1: VersionStats(1, 100, 300, 30), 3: VersionStats(3, 100, 300, 60, 40.0)}
>>> verdict(stats)
'the learned model (v3) beats the starting heuristic (v1): 20.0% of suggestions accepted vs 10.0% (2.00x)'
>>> stats.versions = {1: VersionStats(1, 100, 300, 30), 2: VersionStats(2, 5, 15, 9, 50.0)}
>>> verdict(stats)
'no learned version served long enough to compare with the heuristic (v1): run longer (--duration)'
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from loopline.demo.stats import DemoStats, VersionStats

__all__ = [
    "MIN_SHOWN",
    "alerts_line",
    "broken_line",
    "bug_line",
    "live_view",
    "plain_line",
    "summary",
    "verdict",
]

# A version must have shown this many suggestions before its rate is compared.
MIN_SHOWN = 60


def _label(stats: DemoStats, version: int) -> str:
    return f"v{version}" + (" (heuristic)" if version == stats.heuristic else "")


def _versions(stats: DemoStats) -> Table:
    table = Table(title="acceptance rate per model version", expand=False)
    for column in ("version", "from", "requests", "shown", "accepted", "rate"):
        table.add_column(column, justify="right")
    for v in sorted(stats.versions.values(), key=lambda v: v.version):
        table.add_row(
            _label(stats, v.version), f"{v.since:.0f}s", f"{v.requests:,}", f"{v.shown:,}",
            f"{v.accepted:,}", f"{v.rate:.1%}",
        )  # fmt: skip
    return table


def live_view(stats: DemoStats) -> Panel:
    """The panel the live view redraws."""
    loop = Table.grid(padding=(0, 2))
    loop.add_column(style="bold")
    loop.add_column()
    freshness = "-" if stats.freshness_ms is None else f"{stats.freshness_ms:,.0f} ms"
    production = _label(stats, stats.production) if stats.production else "-"
    rows = [
        ("log", stats.log_url),
        ("time", f"{stats.elapsed:,.0f} / {stats.duration:,.0f} s"),
        ("events", f"{stats.events:,} ({stats.events_per_s:,.0f}/s)"),
        ("feature freshness", f"{freshness} (append to readable)"),
        ("model in production", f"{stats.model} {production}"),
        ("ranking requests", f"{stats.requests:,} ({stats.failed} failed)"),
        ("decisions logged", f"{stats.decisions_logged:,}"),
        ("outcomes (accepted)", f"{stats.outcomes:,}"),
        ("labelled examples", f"{stats.labelled:,} ({stats.positives:,} positive)"),
    ]
    for key, value in rows:
        loop.add_row(key, value)
    parts: list[RenderableType] = [loop, _versions(stats)]
    if stats.training:
        parts.append("\n".join(["training:", *stats.training[-6:]]))
    parts.append("\n".join([alerts_line(stats), *stats.alert_lines[-6:]]))
    return Panel(Group(*parts), title=f"loopline demo: {stats.app}", expand=False)


def plain_line(stats: DemoStats) -> str:
    """One line of progress for a terminal without a live view (CI, a pipe)."""
    rates = ", ".join(f"v{v.version} {v.rate:.1%}" for v in sorted(
        stats.versions.values(), key=lambda v: v.version))  # fmt: skip
    return (
        f"{stats.elapsed:5.0f}s  events {stats.events:,}  requests {stats.requests:,}  "
        f"decisions {stats.decisions_logged:,}  labelled {stats.labelled:,}  "
        f"production v{stats.production}  acceptance: {rates}  {alerts_line(stats)}"
    )


def alerts_line(stats: DemoStats) -> str:
    """The monitor's alerts open now, in one line.

    >>> from loopline.monitor.alerts import AlertRecord
    >>> stats = DemoStats("demo-1", "embedded:/tmp/x", 60.0)
    >>> alerts_line(stats)
    'alerts open: none'
    >>> stats.alerts["a"] = AlertRecord(id="a", alert="coverage_drop", state="opened",
    ...     metric="coverage", scope="demo-1.pymk:1::", feature="same_industry")
    >>> alerts_line(stats)
    'alerts open: coverage_drop same_industry (demo-1.pymk:1::)'
    """
    if not stats.alerts:
        return "alerts open: none"
    shown = [
        f"{a.alert} {a.feature} ({a.scope})" if a.feature else f"{a.alert} ({a.scope})"
        for a in sorted(stats.alerts.values(), key=lambda a: a.id)
    ]
    return "alerts open: " + ", ".join(shown)


def verdict(stats: DemoStats) -> str:
    """Whether the learned model beat the heuristic, in one sentence."""
    heuristic = stats.versions.get(stats.heuristic)
    learned = [
        v
        for v in stats.versions.values()
        if v.version > stats.heuristic and v.shown >= MIN_SHOWN and v.version != stats.broken
    ]
    if heuristic is None or not learned:
        return (
            f"no learned version served long enough to compare with the heuristic "
            f"(v{stats.heuristic}): run longer (--duration)"
        )
    best: VersionStats = max(learned, key=lambda v: v.version)  # the latest learned
    ratio = f"{best.rate / heuristic.rate:.2f}x" if heuristic.rate else "none for the heuristic"
    word = "beats" if best.rate > heuristic.rate else "does not beat"
    return (
        f"the learned model (v{best.version}) {word} the starting heuristic "
        f"(v{heuristic.version}): {best.rate:.1%} of suggestions accepted vs "
        f"{heuristic.rate:.1%} ({ratio})"
    )


def broken_line(stats: DemoStats) -> str | None:
    """What became of the deliberately broken version, if one was published."""
    if stats.broken is None:
        return None
    reached = stats.versions.get(stats.broken)
    members, requests = (len(reached.members), reached.requests) if reached else (0, 0)
    share = requests / stats.requests if stats.requests else 0.0
    fate = (
        "was rolled back by its guardrail"
        if stats.broken in stats.rolled_back
        else ("was not rolled back before the end")
    )
    return (
        f"the deliberately broken v{stats.broken} {fate}; it reached {members:,} members "
        f"({share:.1%} of requests)"
    )


def bug_line(stats: DemoStats) -> str | None:
    """How soon the monitor caught the pipeline bug (--break-feature), if there was one.

    The delay is from the bug's first broken row to the demo reading the
    committed alert; the window the alert judged ended some seconds before.

    >>> from loopline.monitor.alerts import AlertRecord
    >>> stats = DemoStats("demo-1", "embedded:/tmp/x", 60.0)
    >>> stats.broken_feature, stats.broke_at = "same_city", 100_000
    >>> bug_line(stats)
    'the pipeline bug broke same_city; no coverage alert named it'
    >>> stats.alert_log.append((114_500, AlertRecord(id="a", alert="coverage_drop",
    ...     state="opened", metric="coverage", scope="s:1::", feature="same_city", end=112_000)))
    >>> bug_line(stats)
    'the pipeline bug broke same_city; the monitor opened a coverage alert naming it 14.5 s later (its window ended 12.0 s after the bug)'
    """
    if stats.broken_feature is None or stats.broke_at is None:
        return None
    caught = [
        (seen, a)
        for seen, a in stats.alert_log
        if a.state == "opened" and a.metric == "coverage" and a.feature == stats.broken_feature
        and seen >= stats.broke_at
    ]  # fmt: skip
    if not caught:
        return f"the pipeline bug broke {stats.broken_feature}; no coverage alert named it"
    seen, alert = caught[0]
    return (
        f"the pipeline bug broke {stats.broken_feature}; the monitor opened a coverage alert "
        f"naming it {(seen - stats.broke_at) / 1000:.1f} s later (its window ended "
        f"{(alert.end - stats.broke_at) / 1000:.1f} s after the bug)"
    )


def summary(stats: DemoStats) -> Group:
    """The final summary: the loop's counts, the versions, the verdict, the broken version,
    the pipeline bug."""
    lines = [verdict(stats)] + [x for x in (broken_line(stats), bug_line(stats)) if x]
    return Group(live_view(stats), *(f"[bold]{line}[/bold]" for line in ["", *lines]))
