"""The experiment report as HTML: one self-contained page, and the parts a page shows.

`render_html` is ``loopline experiments report --format html``: no script,
no external file. Its parts are the dashboard's too
(`loopline.dashboard.page_experiments`): `segment_rows` (the segment table,
p-values adjusted across segments and metrics) and `age_chart` (the lift of
the primary metric by exposure age, with its intervals, as an SVG whose
arms are ``<g class="series" data-series="ARM">``). The numbers are those of
`loopline.experiments.report.report`'s dict.

>>> nov = {"metric": "mean_label", "buckets": [
...     {"bucket": "0-1h", "arms": [{"arm": "v2", "units": 10, "lift": 0.1, "interval": [0.0, 0.2]}]},
...     {"bucket": "1h-1d", "arms": [{"arm": "v2", "units": 8, "lift": 0.05, "interval": [-0.1, 0.2]}]}]}
>>> svg = age_chart(nov)
>>> svg.count("<circle"), 'data-series="v2"' in svg
(2, True)
>>> fmt_num(0.123456), fmt_p(1e-9), fmt_pct_interval([0.01, -0.02])
('0.1235', '<1e-6', '[+1.00%, -2.00%]')
"""

from __future__ import annotations

import datetime
import html
from typing import Any

__all__ = [
    "SEGMENT_HEADERS",
    "age_chart",
    "fmt_interval",
    "fmt_lift",
    "fmt_num",
    "fmt_p",
    "fmt_pct",
    "fmt_pct_interval",
    "fmt_when",
    "render_html",
    "segment_rows",
]


def fmt_num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return (
        f"{value:.{digits}g}"
        if abs(value) >= 1e4 or 0 < abs(value) < 1e-3
        else f"{value:.{digits}f}"
    )


def fmt_p(value: Any) -> str:
    if value is None:
        return "-"
    return "<1e-6" if value < 1e-6 else f"{value:.4f}"


def fmt_interval(pair: Any, digits: int = 4) -> str:
    if not pair or pair[0] is None:
        return "-"
    return f"[{fmt_num(pair[0], digits)}, {fmt_num(pair[1], digits)}]"


def fmt_lift(lift: Any, interval: Any) -> str:
    """A lift and its interval, or one "-" when there is none (an AUC with too few labels)."""
    return "-" if lift is None else f"{fmt_num(lift)} {fmt_interval(interval)}"


def fmt_when(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def fmt_pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:+.2f}%"


def fmt_pct_interval(pair: Any) -> str:
    if not pair or pair[0] is None:
        return "-"
    return f"[{fmt_pct(pair[0])}, {fmt_pct(pair[1])}]"


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


def age_chart(nov: dict[str, Any], title: str = "") -> str:
    """An SVG of the lift per exposure-age bucket, with its interval, one colour per arm
    (empty when no bucket has a lift); `title` names it for readers and tests."""
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
    width, height, left, top = 480, 240, 56, 16
    plot_w, plot_h = width - left - 20, height - top - 50

    def y(v: float) -> float:
        return top + plot_h * (high - v) / span

    def x(i: int) -> float:
        return left + plot_w * (i + 0.5) / len(buckets)

    colours = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00"]  # Okabe-Ito
    arms = sorted({arm for _, arm, _, _ in points})
    title = title or f"lift of {nov['metric']} by exposure age"
    parts = [
        f'<svg class="chart age" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_h(title)}">'
        f"<title>{_h(title)}</title>"
    ]
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999" stroke-dasharray="4"/>'
    )
    for v in sorted({low, 0.0, high}):
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="12">{fmt_num(v)}</text>'
        )
    for i, name in enumerate(buckets):
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle" font-size="12">{_h(name)}</text>'
        )
    for k, arm in enumerate(arms):
        colour = colours[k % len(colours)]
        offset = (k - (len(arms) - 1) / 2) * 8
        mine = [(i, lift, iv) for i, a, lift, iv in points if a == arm]
        path = " ".join(f"{x(i) + offset:.1f},{y(lift):.1f}" for i, lift, _ in mine)
        parts.append(f'<g class="series" data-series="{_h(arm)}">')
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}"/>')
        for i, lift, iv in mine:
            cx = x(i) + offset
            if iv[0] is not None:
                parts.append(
                    f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(iv[0]):.1f}" y2="{y(iv[1]):.1f}" stroke="{colour}"/>'
                )
            parts.append(f'<circle cx="{cx:.1f}" cy="{y(lift):.1f}" r="3.5" fill="{colour}"/>')
        parts.append("</g>")
        parts.append(
            f'<text x="{left + 10 + 90 * k}" y="{height - 8}" fill="{colour}" font-size="13">{_h(arm)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


SEGMENT_HEADERS = ["segment", "value", "arm", "metric", "lift [95%]", "p", "adjusted p", "SRM p"]


def segment_rows(r: dict[str, Any]) -> list[list[str]]:
    """The report's segment table: a row of HTML cells (escaped) per segment value, treatment
    and metric, in the order of `SEGMENT_HEADERS`; a significant adjusted p is ``.sig``."""
    return [
        [
            _h(row["segment"]),
            _h(row["value"]),
            _h(c["arm"]),
            _h(c["metric"]),
            fmt_lift(c["lift"], c["interval"]),
            fmt_p(c["p_value"]),
            f"<span class='{'sig' if c['significant'] else ''}'>{fmt_p(c['adjusted_p_value'])}</span>",
            fmt_p(row["srm"]["p_value"]) if row["srm"] else "-",
        ]
        for row in r["segments"]
        for c in row["comparisons"]
    ]


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
            f"<p class='{cls}'>{verdict} (chi-square {fmt_num(srm['statistic'], 3)}, p {fmt_p(srm['p_value'])})</p>"
        )
    metrics = sorted({m for a in r["arms"] for m in a["metrics"]})
    rows = [
        [
            _h(a["arm"] + (" (control)" if a["control"] else "")),
            fmt_num(a["weight"], 3),
            fmt_num(a["units"]),
            fmt_num(a["decisions"]),
            fmt_num(a["exposures"]),
            fmt_num(a["examples"]),
        ]
        + [
            f"{fmt_num(a['metrics'][m]['mean'])} {fmt_interval(a['metrics'][m]['interval'])}"
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
            fmt_lift(c["lift"], c["interval"]),
            "-"
            if c["relative_lift"] is None
            else f"{fmt_pct(c['relative_lift'])} {fmt_pct_interval(c['relative_interval'])}",
            f"<span class='{'sig' if c['significant'] else ''}'>{fmt_p(c['p_value'])}</span>",
            fmt_interval(c["anytime_interval"]),
            fmt_num(c["chance_to_beat_control"], 3),
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
        out.append(f"<h2>Lift of {_h(nov['metric'])} by exposure age</h2>{age_chart(nov)}")
        for arm, t in nov["trend"].items():
            out.append(
                f"<p>{_h(arm)}: slope {fmt_num(t['slope_per_bucket'])} per bucket, one-sided p of a "
                f"decline {fmt_p(t['p_value'])}{' — the lift fades with exposure' if t['declining'] else ''}</p>"
            )
    if r["segments"]:
        out.append(f"<h2>Segments (adjusted: {_h(r['correction'])})</h2>")
        out.append(_html_table(SEGMENT_HEADERS, segment_rows(r)))
    out.extend(f"<p>note: {_h(n)}</p>" for n in r["notes"])
    out.append("</body></html>\n")
    return "".join(out)
