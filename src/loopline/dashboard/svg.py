"""Charts as SVG, drawn on the server: line charts over time and paired histograms.

The dashboard ships no chart library and makes no request to another host:
a chart is a few kilobytes of SVG in the page (decision 0034). Every series
is one ``<path class="series" data-series="NAME">``, so a browser test can
check that the expected series were drawn.

>>> svg = line_chart([Series("decisions/s", [(0, 1.0), (60_000, 3.0)])], title="traffic")
>>> svg.count('class="series"'), 'data-series="decisions/s"' in svg
(1, True)
>>> "no data yet" in line_chart([], title="empty")
True
>>> histogram(["0", "1"], [("training", [0.5, 0.5]), ("served", [0.2, 0.8])]).count("<rect")
5
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["PALETTE", "Series", "histogram", "line_chart"]

# Colour-blind-safe (Okabe-Ito), readable on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999")
WIDTH, HEIGHT = 480, 220
MAX_POINTS = 120  # per line: more is finer than the pixels and only weighs the page
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 30, 30


@dataclass(frozen=True)
class Series:
    """One line: `points` are (epoch ms, value); a None value breaks the line."""

    name: str
    points: Sequence[tuple[float, float | None]] = field(default_factory=list)
    dashed: bool = False


def _fmt(y: float) -> str:
    if y == 0:
        return "0"
    if abs(y) >= 1000:
        return f"{y:,.0f}"
    return f"{y:.3g}"


def _clock(ms: float, span_ms: float) -> str:
    pattern = "%H:%M:%S" if span_ms < 600_000 else "%H:%M" if span_ms < 86_400_000 else "%m-%d"
    return time.strftime(pattern, time.gmtime(ms / 1000))


def _frame(title: str, body: str, legend: Sequence[tuple[str, str, bool]]) -> str:
    keys = []
    x = LEFT
    for name, colour, dashed in legend:
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        keys.append(
            f'<line x1="{x}" y1="14" x2="{x + 14}" y2="14" stroke="{colour}" stroke-width="3"{dash}/>'
            f'<text x="{x + 18}" y="18" class="legend">{html.escape(name)}</text>'
        )
        x += 28 + 7 * len(name)
    caption = f"<figcaption>{html.escape(title)}</figcaption>" if title else ""
    return (
        f'<figure class="chart">{caption}<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{html.escape(title)}</title>{''.join(keys)}{body}</svg></figure>"
    )


def _empty(title: str) -> str:
    return _frame(
        title,
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">'
        "no data yet</text>",
        [],
    )


def _thin(s: Series) -> Series:
    """At most `MAX_POINTS` of `s`'s points, evenly spread, the newest kept.

    >>> len(_thin(Series("x", [(i, 1.0) for i in range(1000)])).points)
    120
    """
    n = len(s.points)
    if n <= MAX_POINTS:
        return s
    keep = [s.points[round(i * (n - 1) / (MAX_POINTS - 1))] for i in range(MAX_POINTS)]
    return Series(s.name, keep, s.dashed)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    band: tuple[float, float] | None = None,
    y_min: float | None = None,
    integer: bool = False,
) -> str:
    """Lines over time on one y axis; `band` shades a (low, high) range (e.g. training's);
    `integer` puts the y ticks on whole numbers (versions)."""
    drawn = [_thin(s) for s in series if any(y is not None for _, y in s.points)]
    if not drawn:
        return _empty(title)
    xs = [x for s in drawn for x, y in s.points if y is not None]
    ys = [y for s in drawn for _, y in s.points if y is not None]
    if band is not None:
        ys += list(band)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y_min is not None:
        y0 = min(y0, y_min)
    if y1 == y0:
        y0, y1 = y0 - 1 if y0 else 0, y1 + 1
    pad = (y1 - y0) * 0.08
    y0, y1 = (y0 if y_min is not None and y0 == y_min else y0 - pad), y1 + pad
    if integer:
        y0, y1 = math.floor(y0) - 0.5, math.ceil(y1) + 0.5
    if x1 == x0:
        x0, x1 = x0 - 1000, x1 + 1000
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * w

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * h

    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" class="plot"/>']
    if band is not None:
        top, bottom = py(max(band)), py(min(band))
        parts.append(
            f'<rect x="{LEFT}" y="{top:.1f}" width="{w}" height="{max(bottom - top, 1):.1f}" '
            'class="band"/>'
        )
    ticks = [y0 + (y1 - y0) * i / 4 for i in range(5)]
    if integer:
        whole = range(math.ceil(y0), math.floor(y1) + 1)
        ticks = [float(y) for y in whole[:: max(1, len(whole) // 5)]]
    for y in ticks:
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + w}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end" class="tick">'
            f"{_fmt(y)}</text>"
        )
    for i in range(4):
        x = x0 + (x1 - x0) * i / 3
        anchor = "start" if i == 0 else "end" if i == 3 else "middle"
        parts.append(
            f'<text x="{px(x):.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}" class="tick">'
            f"{_clock(x, x1 - x0)}</text>"
        )
    legend = []
    for i, s in enumerate(drawn):
        colour = PALETTE[i % len(PALETTE)]
        path, pen = [], "M"
        for x, y in s.points:
            if y is None or not math.isfinite(y):
                pen = "M"
                continue
            path.append(f"{pen}{px(x):.1f},{py(y):.1f}")
            pen = "L"
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        parts.append(
            f'<path class="series" data-series="{html.escape(s.name)}" d="{" ".join(path)}" '
            f'stroke="{colour}"{dash}/>'
        )
        if len(s.points) < 40:  # dots where there are few points, so a single window shows
            parts += [
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>'
                for x, y in s.points
                if y is not None and math.isfinite(y)
            ]
        legend.append((s.name, colour, s.dashed))
    return _frame(title, "".join(parts), legend)


def histogram(
    labels: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]], *, title: str = ""
) -> str:
    """Side-by-side bars: one group per (name, shares), one bar per label and group."""
    drawn = [(n, v) for n, v in groups if v and any(v)]
    if not drawn or not labels:
        return _empty(title)
    top = max(max(v) for _, v in drawn) or 1.0
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = w / len(labels)
    bar = slot * 0.8 / len(drawn)
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" class="plot"/>']
    for i in range(3):
        y = top * i / 2
        yy = TOP + (1 - y / top) * h
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + w}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" class="tick">{_fmt(y)}</text>'
        )
    legend = []
    for g, (name, values) in enumerate(drawn):
        colour = PALETTE[g % len(PALETTE)]
        rects = []
        for i, value in enumerate(values[: len(labels)]):
            height = value / top * h
            x = LEFT + i * slot + slot * 0.1 + g * bar
            rects.append(
                f'<rect x="{x:.1f}" y="{TOP + h - height:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{height:.1f}" fill="{colour}"/>'
            )
        parts.append(f'<g class="series" data-series="{html.escape(name)}">{"".join(rects)}</g>')
        legend.append((name, colour, False))
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        parts.append(
            f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
            f'class="tick">{html.escape(labels[i])}</text>'
        )
    return _frame(title, "".join(parts), legend)
