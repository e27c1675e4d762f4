"""``loopline experiments report``: how an experiment's arms compare, as a table, JSON or a page.

The numbers come from `loopline.experiments.report`; this module only
renders them: a rich table for a terminal, the report's dict as JSON, or a
self-contained HTML page (no script, no external file) with the lift by
exposure age drawn as an SVG chart.
"""

from __future__ import annotations

import datetime
import html
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


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return (
        f"{value:.{digits}g}"
        if abs(value) >= 1e4 or 0 < abs(value) < 1e-3
        else f"{value:.{digits}f}"
    )


def _p(value: Any) -> str:
    if value is None:
        return "-"
    return "<1e-6" if value < 1e-6 else f"{value:.4f}"


def _interval(pair: Any, digits: int = 4) -> str:
    if not pair or pair[0] is None:
        return "-"
    return f"[{_num(pair[0], digits)}, {_num(pair[1], digits)}]"


def _when(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:+.2f}%"


def _pct_interval(pair: Any) -> str:
    if not pair or pair[0] is None:
        return "-"
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


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


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.sig{font-weight:bold;color:#0a6}.bad{color:#c22;font-weight:bold}
h1{font-size:20px}h2{font-size:16px;margin-top:2em}
"""


def _h(text: Any) -> str:
    return html.escape(str(text))


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _age_chart(nov: dict[str, Any]) -> str:
    """An SVG of the lift per exposure-age bucket, with its interval, one colour per arm."""
    buckets = [b["bucket"] for b in nov["buckets"]]
    points = [
        (i, a["arm"], a["lift"], a["interval"])
        for i, b in enumerate(nov["buckets"])
        for a in b["arms"]
        if a["lift"] is not None
    ]
    if not points:
        return ""
    values = [v for _, _, lift, iv in points for v in (lift, *(x for x in iv if x is not None))]
    low, high = min([*values, 0.0]), max([*values, 0.0])
    span = (high - low) or 1.0
    width, height, left, top = 640, 280, 70, 20
    plot_w, plot_h = width - left - 20, height - top - 50

    def y(v: float) -> float:
        return top + plot_h * (high - v) / span

    def x(i: int) -> float:
        return left + plot_w * (i + 0.5) / len(buckets)

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    arms = sorted({arm for _, arm, _, _ in points})
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999" stroke-dasharray="4"/>'
    )
    for v in (low, high):
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{_num(v)}</text>'
        )
    for i, name in enumerate(buckets):
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle" font-size="11">{_h(name)}</text>'
        )
    for k, arm in enumerate(arms):
        colour = colours[k % len(colours)]
        offset = (k - (len(arms) - 1) / 2) * 8
        mine = [(i, lift, iv) for i, a, lift, iv in points if a == arm]
        path = " ".join(f"{x(i) + offset:.1f},{y(lift):.1f}" for i, lift, _ in mine)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}"/>')
        for i, lift, iv in mine:
            cx = x(i) + offset
            if iv[0] is not None:
                parts.append(
                    f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(iv[0]):.1f}" y2="{y(iv[1]):.1f}" stroke="{colour}"/>'
                )
            parts.append(f'<circle cx="{cx:.1f}" cy="{y(lift):.1f}" r="3.5" fill="{colour}"/>')
        parts.append(
            f'<text x="{left + 10 + 90 * k}" y="{height - 8}" fill="{colour}" font-size="12">{_h(arm)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(r: dict[str, Any]) -> str:
    """Report `r` as one self-contained HTML page."""
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>experiment {_h(r['experiment'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>experiment {_h(r['experiment'])}</h1>",
        f"<p>model {_h(r['model'])}, policy {_h(r['policy'])}, unit {_h(r['unit'])}, {_h(r['state'])}; "
        f"primary metric {_h(r['primary'])}; {r['read']['decisions']:,} decisions and "
        f"{r['read']['labelled_examples']:,} labelled examples read.</p>",
    ]
    srm = r["srm"]
    if srm is not None:
        cls = "bad" if srm["mismatch"] else ""
        verdict = (
            "sample-ratio MISMATCH: do not trust these numbers"
            if srm["mismatch"]
            else "sample ratio ok"
        )
        out.append(
            f"<p class='{cls}'>{verdict} (chi-square {_num(srm['statistic'], 3)}, p {_p(srm['p_value'])})</p>"
        )
    metrics = sorted({m for a in r["arms"] for m in a["metrics"]})
    rows = [
        [
            _h(a["arm"] + (" (control)" if a["control"] else "")),
            _num(a["weight"], 3),
            _num(a["units"]),
            _num(a["decisions"]),
            _num(a["exposures"]),
            _num(a["examples"]),
        ]
        + [
            f"{_num(a['metrics'][m]['mean'])} {_interval(a['metrics'][m]['interval'])}"
            if m in a["metrics"]
            else "-"
            for m in metrics
        ]
        for a in r["arms"]
    ]
    out.append("<h2>Arms</h2>")
    out.append(
        _html_table(
            ["arm", "weight", "units", "decisions", "exposures", "examples", *metrics], rows
        )
    )
    rows = [
        [
            _h(c["arm"]),
            _h(c["metric"]),
            _h(c["role"]),
            f"{_num(c['lift'])} {_interval(c['interval'])}",
            f"{_pct(c['relative_lift'])} {_pct_interval(c['relative_interval'])}",
            f"<span class='{'sig' if c['significant'] else ''}'>{_p(c['p_value'])}</span>",
            _interval(c["anytime_interval"]),
            _num(c["chance_to_beat_control"], 3),
        ]
        for c in r["comparisons"]
    ]
    out.append("<h2>Treatment against control</h2>")
    out.append(
        _html_table(
            [
                "arm",
                "metric",
                "role",
                "lift [95%]",
                "relative [95%]",
                "p (fixed)",
                "anytime [95%]",
                "P(beat)",
            ],
            rows,
        )
    )
    nov = r["novelty"]
    if nov["buckets"]:
        out.append(f"<h2>Lift of {_h(nov['metric'])} by exposure age</h2>{_age_chart(nov)}")
        for arm, t in nov["trend"].items():
            out.append(
                f"<p>{_h(arm)}: slope {_num(t['slope_per_bucket'])} per bucket, one-sided p of a "
                f"decline {_p(t['p_value'])}{' — the lift fades with exposure' if t['declining'] else ''}</p>"
            )
    if r["segments"]:
        rows = [
            [
                _h(row["segment"]),
                _h(row["value"]),
                _h(c["arm"]),
                _h(c["metric"]),
                f"{_num(c['lift'])} {_interval(c['interval'])}",
                _p(c["p_value"]),
                f"<span class='{'sig' if c['significant'] else ''}'>{_p(c['adjusted_p_value'])}</span>",
                _p(row["srm"]["p_value"]) if row["srm"] else "-",
            ]
            for row in r["segments"]
            for c in row["comparisons"]
        ]
        out.append(f"<h2>Segments (adjusted: {_h(r['correction'])})</h2>")
        out.append(
            _html_table(
                ["segment", "value", "arm", "metric", "lift [95%]", "p", "adjusted p", "SRM p"],
                rows,
            )
        )
    out.extend(f"<p>note: {_h(n)}</p>" for n in r["notes"])
    out.append("</body></html>\n")
    return "".join(out)
