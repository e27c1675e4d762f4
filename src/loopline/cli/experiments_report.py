"""``loopline experiments report``: how an experiment's arms compare, as a table, JSON or a page.

The numbers come from `loopline.experiments.report`; this module only
renders them: a rich table for a terminal, the report's dict as JSON, or a
self-contained HTML page (no script, no external file) with the lift by
exposure age drawn as an SVG chart (`loopline.experiments.report_html`, which
the dashboard's Experiments page draws from too).
"""

from __future__ import annotations

import io
import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from loopline.cli.errors import CLIError
from loopline.cli.settings import LogSettings
from loopline.experiments.corrections import CORRECTIONS
from loopline.experiments.records import ExperimentError
from loopline.experiments.report_html import fmt_interval as _interval
from loopline.experiments.report_html import fmt_num as _num
from loopline.experiments.report_html import fmt_p as _p
from loopline.experiments.report_html import fmt_pct as _pct
from loopline.experiments.report_html import fmt_pct_interval as _pct_interval
from loopline.experiments.report_html import fmt_when as _when
from loopline.experiments.report_html import render_html

__all__ = ["report"]


@click.command(
    epilog="""\b
Examples:
  loopline experiments report ranker-v7 --app shop
  loopline experiments report ranker-v7 --app shop --segment page --segment feature.country
  loopline experiments report ranker-v7 --app shop --format json > report.json
  loopline experiments report ranker-v7 --app shop --format html --output report.html

\b
Reads APP.decisions and APP.labelled as they are now. Intervals are 95% (the
experiment's alpha); p-values are fixed-horizon (read once); the anytime-valid
interval holds however often the report was read before.""",
)
@click.argument("name")
@click.option(
    "--app",
    "app_name",
    required=True,
    metavar="APP",
    help="The application's name: the prefix of its topics (shop for shop.decisions).",
)
@click.option(
    "--segment",
    "segments",
    multiple=True,
    metavar="FIELD",
    help="Break down by a context field (page, context.page) or a feature as served "
    "(feature.country); repeatable.",
)
@click.option(
    "--correction",
    type=click.Choice(CORRECTIONS),
    default="holm",
    show_default=True,
    help="Multiple-testing correction across segments and metrics: holm (family-wise "
    "error) or bh (Benjamini-Hochberg, false discovery rate).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "html"]),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@click.pass_obj
def report(
    settings: LogSettings,
    name: str,
    app_name: str,
    segments: tuple[str, ...],
    correction: str,
    fmt: str,
    output: str | None,
) -> None:
    """The report of experiment NAME: per arm, per segment and by exposure age."""
    from loopline.experiments.report import report as build
    from loopline.experiments.report_data import Segment

    try:
        parsed = [Segment.parse(s) for s in segments]
        with settings.open() as log:
            result = build(log, app_name, name, parsed, correction=correction)  # type: ignore[arg-type]
    except ExperimentError as exc:
        raise CLIError(str(exc)) from None
    if fmt == "json":
        text = json.dumps(result, indent=2) + "\n"
    elif fmt == "html":
        text = render_html(result)
    else:
        buffer = io.StringIO()
        render_table(result, Console(file=buffer, width=160, force_terminal=False))
        text = buffer.getvalue()
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


# -- rendering -----------------------------------------------------------------------------


def render_table(r: dict[str, Any], console: Console) -> None:
    """Print report `r` as rich tables on `console`."""
    console.print(
        f"experiment {r['experiment']} (model {r['model']}, {r['policy']}, unit {r['unit']}, "
        f"{r['state']}, revision {r['revision']}); primary {r['primary']}; "
        f"{r['read']['decisions']:,} decisions and {r['read']['labelled_examples']:,} labelled "
        "examples read"
    )
    arms = Table(title="arms")
    for column in ("arm", "weight", "units", "decisions", "exposures", "examples", "p99 ms"):
        arms.add_column(column, justify="left" if column == "arm" else "right")
    metrics = sorted({m for a in r["arms"] for m in a["metrics"]})
    for m in metrics:
        arms.add_column(f"{m} [95%]", justify="right")
    for a in r["arms"]:
        arms.add_row(
            a["arm"] + (" (control)" if a["control"] else ""),
            _num(a["weight"], 3),
            _num(a["units"]),
            _num(a["decisions"]),
            _num(a["exposures"]),
            _num(a["examples"]),
            _num(a["latency_p99_ms"], 2),
            *(
                f"{_num(a['metrics'][m]['mean'])} {_interval(a['metrics'][m]['interval'])}"
                if m in a["metrics"]
                else "-"
                for m in metrics
            ),
        )
    console.print(arms)
    lifts = Table(title="treatment against control (p: fixed-horizon Welch; anytime: sequential)")
    for column in (
        "arm",
        "metric",
        "role",
        "lift [95%]",
        "relative [95%]",
        "p",
        "anytime [95%]",
        "P(beat)",
    ):
        lifts.add_column(column)
    for c in r["comparisons"]:
        lifts.add_row(
            c["arm"],
            c["metric"],
            c["role"],
            f"{_num(c['lift'])} {_interval(c['interval'])}",
            f"{_pct(c['relative_lift'])} {_pct_interval(c['relative_interval'])}",
            _p(c["p_value"]) + (" *" if c["significant"] else ""),
            _interval(c["anytime_interval"]),
            _num(c["chance_to_beat_control"], 3),
        )
    console.print(lifts)
    srm = r["srm"]
    if srm is None:
        console.print("sample ratio: not tested (a bandit's weights move by design)")
    else:
        verdict = "MISMATCH: the arms did not get their share of units" if srm["mismatch"] else "ok"
        since = srm.get("units_first_seen_since")
        scope = f" (units first seen since the weights changed, {_when(since)})" if since else ""
        console.print(
            f"sample ratio{scope}: chi-square {_num(srm['statistic'], 3)}, "
            f"p {_p(srm['p_value'])}: {verdict}"
        )
    if r["segments"]:
        seg = Table(title=f"segments (p adjusted across segments and metrics: {r['correction']})")
        for column in (
            "segment",
            "value",
            "units",
            "arm",
            "metric",
            "lift [95%]",
            "p",
            "adjusted p",
            "SRM p",
        ):
            seg.add_column(column)
        for row in r["segments"]:
            units = "/".join(_num(a.get("units", 0)) for a in row["arms"])
            srm_p = _p(row["srm"]["p_value"]) if row["srm"] else "-"
            for c in row["comparisons"]:
                seg.add_row(
                    row["segment"],
                    str(row["value"]),
                    units,
                    c["arm"],
                    c["metric"],
                    f"{_num(c['lift'])} {_interval(c['interval'])}",
                    _p(c["p_value"]),
                    _p(c["adjusted_p_value"]) + (" *" if c["significant"] else ""),
                    srm_p,
                )
        console.print(seg)
    nov = r["novelty"]
    if nov["buckets"]:
        age = Table(
            title=f"lift of {nov['metric']} by exposure age (time since the unit's first decision)"
        )
        for column in ("age", "arm", "units", "lift [95%]", "p"):
            age.add_column(column)
        for b in nov["buckets"]:
            for a in b["arms"]:
                age.add_row(
                    b["bucket"],
                    a["arm"],
                    _num(a["units"]),
                    f"{_num(a['lift'])} {_interval(a['interval'])}",
                    _p(a["p_value"]),
                )
        console.print(age)
        for arm, t in nov["trend"].items():
            console.print(
                f"novelty {arm}: slope {_num(t['slope_per_bucket'])} per bucket "
                f"(se {_num(t['standard_error'])}), p(declining) {_p(t['p_value'])}"
                + (": the lift fades with exposure" if t["declining"] else "")
            )
    for note in r["notes"]:
        console.print(f"note: {note}")
