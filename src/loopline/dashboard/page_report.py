"""An experiment's report on its page: the lift by exposure age and the segment table.

The same numbers and drawing as ``loopline experiments report --format html``
(`loopline.experiments.report_html`), from `ExperimentReports`: the page
shows "computing…" until the background thread has the report, and the
part refreshes itself (``/live/report/NAME``) like the Loop page's stages.
"""

from __future__ import annotations

import time

from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import Raw, card, esc, num, table
from loopline.experiments.records import Experiment
from loopline.experiments.report_html import SEGMENT_HEADERS, age_chart, fmt_p, segment_rows

__all__ = ["report_live", "report_part"]


def _srm(result: dict) -> str:
    srm = result["srm"]
    if srm is None:
        return "sample ratio: not tested (a bandit's weights move by design)"
    verdict = "MISMATCH: the arms did not get their share of units" if srm["mismatch"] else "ok"
    return (
        f"sample ratio: chi-square {num(srm['statistic'], 3)}, p {fmt_p(srm['p_value'])}: {verdict}"
    )


def report_live(ctx: Dashboard, e: Experiment) -> str:
    """The report's part of the page as it is now (asks for a newer one when due)."""
    held = ctx.reports.get(e.name, e.unit)
    if held is None:
        return (
            '<p class="muted computing">computing the report… (it reads the experiment\'s '
            "decisions and labelled examples: seconds per hundred thousand)</p>"
        )
    if held.result is None:
        return f'<p class="muted">no report: {esc(held.error)}</p>'
    r = held.result
    when = time.strftime("%H:%M:%S", time.gmtime(held.computed_at))
    updating = " · updating…" if ctx.reports.computing(e.name) else ""
    about = (
        f'<p class="muted">{r["read"]["decisions"]:,} decisions and '
        f"{r['read']['labelled_examples']:,} labelled examples read; computed {when} UTC in "
        f"{held.seconds:.1f} s{updating}. {esc(_srm(r))}</p>"
    )
    nov = r["novelty"]
    title = f"lift of {nov['metric']} by exposure age (time since the unit's first decision)"
    chart = age_chart(nov, title=title)
    trends = "".join(
        f"<li>{esc(arm)}: slope {num(t['slope_per_bucket'])} per bucket, p(declining) "
        f"{fmt_p(t['p_value'])}{' — the lift fades with exposure' if t['declining'] else ''}</li>"
        for arm, t in nov["trend"].items()
        if t["slope_per_bucket"] is not None
    )
    age = (
        f'<figure class="chart"><figcaption>{esc(title)}</figcaption>{chart}</figure>'
        f'<ul class="muted trends">{trends}</ul>'
        if chart
        else '<p class="muted">no lift by exposure age yet: no labelled example of a '
        "treatment and the control in the same age</p>"
    )
    rows = [[Raw(c) for c in row] for row in segment_rows(r)]
    by = ", ".join(held.segments) or "no text field in the decisions' context"
    segments = (
        f'<p class="muted">by {esc(by)}; p adjusted across segments and metrics '
        f"({esc(r['correction'])})</p>"
        + table(SEGMENT_HEADERS, rows, empty="no segment rows (no labelled example yet)")
    )
    return (
        about
        + '<div class="grid report-parts">'
        + f'<div class="age"><h3>Lift by exposure age</h3>{age}</div>'
        + f'<div class="segments"><h3>Segments</h3>{segments}</div>'
        + "</div>"
    )


def report_part(ctx: Dashboard, e: Experiment) -> str:
    """The report's card on the experiment's page: it refreshes itself every two seconds."""
    live = f'<div data-live="/live/report/{esc(e.name)}">{report_live(ctx, e)}</div>'
    return card("Report (as loopline experiments report)", live, cls="report")
