"""Series over time from the monitor's windows: one line per model version, arm or feature.

A window's records are split by arm and segment; a line per version (or
arm) adds their counts and weighs their measures by the counts they were
computed from.

>>> from loopline.monitor.records import MonitorRecord
>>> def rec(end, arm, n, auc):
...     return MonitorRecord(source="labelled", window="1m", start=end - 60_000, end=end,
...         model="m", model_version=1, arm=arm, segment="", labels=n, scored=n, auc=auc)
>>> lines = by(lambda r: f"v{r.model_version}", [rec(60_000, "a", 10, 0.6), rec(60_000, "b", 30, 0.8)],
...     "auc", weight="scored")
>>> lines[0].name, lines[0].points
('v1', [(60000, 0.75)])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from loopline.dashboard.svg import Series
from loopline.monitor.records import MonitorRecord

__all__ = ["by", "step"]


def by(
    label: Callable[[MonitorRecord], str],
    records: Sequence[MonitorRecord],
    measure: str,
    *,
    weight: str | None = None,
) -> list[Series]:
    """One series per `label` of `measure` per window end: summed (no `weight`), or the
    mean weighted by the count field `weight`."""
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for r in records:
        value = getattr(r, measure)
        if value is None:
            continue
        w = float(getattr(r, weight)) if weight else 1.0
        if weight and not w:
            continue
        held = sums[label(r)][r.end]
        held[0] += value * w if weight else value
        held[1] += w
    out = []
    for name in sorted(sums):
        points = sorted(sums[name].items())
        out.append(Series(name, [(end, s / w if weight else s) for end, (s, w) in points if w]))
    return out


def step(changes: Sequence[tuple[int, float]], now_ms: int) -> list[tuple[float, float | None]]:
    """A step line through `changes` ((epoch ms, value), oldest first), held until `now_ms`.

    >>> step([(0, 1), (10, 2)], 20)
    [(0, 1), (10, 1), (10, 2), (20, 2)]
    """
    points: list[tuple[float, float | None]] = []
    for at, value in changes:
        if points:
            points.append((at, points[-1][1]))
        points.append((at, value))
    if points:
        points.append((max(now_ms, changes[-1][0]), points[-1][1]))
    return points
