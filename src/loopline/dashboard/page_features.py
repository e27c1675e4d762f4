"""The Features page: per feature, coverage and drift over time against the training profile.

From the monitor's decision windows: each feature's coverage as served
(the share neither missing nor the default) beside the production
version's training coverage, its PSI against the training bins, its served
mean beside the training mean; the distribution served in the newest window
beside the one trained on (two histograms in the profile's bins); and the freshness of every source topic.
"""

from __future__ import annotations

import itertools

from loopline.dashboard.context import Dashboard
from loopline.dashboard.markup import ago, card, esc, link, num, table
from loopline.dashboard.svg import Series, histogram, line_chart
from loopline.models.histograms import Histogram
from loopline.models.profiles import Profile, ProfileError
from loopline.monitor.records import MonitorRecord

__all__ = ["bin_labels", "features_body", "served_bins"]


def bin_labels(h: Histogram) -> list[str]:
    """A label per bin: ``<0.5``, ``[0.5, 1)``, ``≥1`` for numbers; the categories and "other".

    >>> bin_labels(Histogram(kind="number", counts=[1, 2, 3], edges=[0.5, 1.0]))
    ['<0.5', '[0.5, 1)', '≥1']
    """
    if not h.numeric:
        return [*h.categories, "other"]
    e = [f"{x:.3g}" for x in h.edges]
    if not e:
        return ["all"]
    return [f"<{e[0]}", *(f"[{a}, {b})" for a, b in itertools.pairwise(e)), f"≥{e[-1]}"]


def _profile(ctx: Dashboard, model: str) -> tuple[int, Profile] | None:
    """The version whose profile the page compares with, and that profile."""
    if not ctx.has_versions(model):
        return None
    # production's profile, else the newest version's that has one (a heuristic has none)
    held = ctx.models.alias(model, "production")
    if held is None or held.profile is None:
        held = next((v for v in reversed(ctx.models.versions(model)) if v.profile), None)
    if held is None or held.profile is None:
        return None
    try:
        return held.version, Profile.from_dict(held.profile)
    except ProfileError:
        return None


def _over_time(windows: list[MonitorRecord], feature: str, measure: str) -> list[Series]:
    """`measure` of `feature` per window end and model version ("served v2"), weighted by
    the rows it was computed from: each version is judged against its own profile."""
    sums: dict[int, dict[int, list[float]]] = {}
    for r in windows:
        for f in r.features:
            value = getattr(f, measure)
            if f.name == feature and value is not None and f.rows:
                held = sums.setdefault(r.model_version, {}).setdefault(r.end, [0.0, 0.0])
                held[0] += value * f.rows
                held[1] += f.rows
    return [
        Series(f"served v{v}", [(end, s / w) for end, (s, w) in sorted(sums[v].items())])
        for v in sorted(sums)
    ]


def _span(lines: list[Series]) -> Series:
    points = [p for s in lines for p in s.points]
    return Series("", sorted(points)[:1] + sorted(points)[-1:])


def _flat(series: Series, value: float | None, name: str) -> Series:
    if value is None or not series.points:
        return Series(name, [])
    return Series(name, [(series.points[0][0], value), (series.points[-1][0], value)], dashed=True)


def served_bins(
    windows: list[MonitorRecord], version: int, feature: str, bins_id: str
) -> list[int] | None:
    """`feature`'s values served by `version` in its newest window, counted in the bins
    `bins_id` names (`Histogram.bins_id`), summed over the window's arms and segments;
    None if none. A monitor judging against another profile than the version's own (the
    demo's reference) counted in other bins: those are not drawn as if they were these.

    >>> from loopline.monitor.records import FeatureStats
    >>> def window(end, bins, version=2):
    ...     stats = FeatureStats(name="age", rows=3, present=3, covered=3, coverage=1.0,
    ...                          mean=1.0, bins=bins, bins_id="b1")
    ...     return MonitorRecord(source="decisions", window="1m", start=end - 60_000, end=end,
    ...                          model="m", model_version=version, arm="", segment="",
    ...                          features=[stats])
    >>> served_bins([window(60_000, [1, 0]), window(120_000, [0, 2]),
    ...              window(120_000, [1, 1]), window(180_000, [5, 5], version=3)], 2, "age", "b1")
    [1, 3]
    >>> served_bins([window(60_000, [1, 0])], 2, "age", "other bins") is None
    True
    """
    newest = max((r.end for r in windows if r.model_version == version), default=None)
    total: list[int] | None = None
    for r in windows:
        if r.model_version != version or r.end != newest:
            continue
        for f in r.features:
            if f.name == feature and f.bins and f.bins_id == bins_id:
                total = [a + b for a, b in zip(total, f.bins, strict=True)] if total else f.bins
    return total


def _feature(ctx: Dashboard, model: str, name: str, held: tuple[int, Profile] | None) -> str:
    windows = ctx.feed.windows("decisions", where=lambda r: r.model == model)
    trained = None
    if held is not None:
        trained = next((f for f in held[1].features if f.name == name), None)
    coverage = _over_time(windows, name, "coverage")
    mean = _over_time(windows, name, "mean")
    psi = _over_time(windows, name, "psi")
    newest = max(coverage, key=lambda s: s.points[-1][0], default=None)
    latest = newest.points[-1][1] if newest else None
    charts = [
        line_chart(
            [*coverage, _flat(_span(coverage), trained and trained.coverage, "training")],
            title=f"{name}: coverage",
            y_min=0,
        ),
        line_chart(psi, title=f"{name}: PSI against each version's training", y_min=0),
        line_chart(
            [*mean, _flat(_span(mean), trained and trained.mean, "training")],
            title=f"{name}: mean",
        ),
    ]
    if trained is not None:
        total = sum(trained.histogram.counts) or 1
        groups = [(f"training v{held[0]}", [c / total for c in trained.histogram.counts])]
        served = served_bins(windows, held[0], name, trained.histogram.bins_id())
        if served is not None:
            groups.append((f"served v{held[0]} now", [c / (sum(served) or 1) for c in served]))
        charts.append(
            histogram(
                bin_labels(trained.histogram),
                groups,
                title=f"{name}: distribution served (newest window) and trained on",
            )
        )
    summary = (
        f'<p class="muted">served coverage {num(latest)} (newest window; the production '
        f"version's training {num(trained.coverage if trained else None)})</p>"
    )
    figures = "".join(charts)
    return card(
        name, summary + f'<div class="grid small">{figures}</div>', cls="feature", anchor=name
    )


def features_body(ctx: Dashboard) -> str:
    """Sources' freshness, then every declared feature of every model."""
    rows = [
        [link(f"/topics/{t}", t), num(ctx.rates.rate(t), 3), num(ctx.rates.total(t)),
         f"{ago(ctx.rates.idle(t))} ago"]
        for t in ctx.app.features.sources
    ]  # fmt: skip
    out = [card("Sources", table(["topic", "records/s", "records", "last record"], rows))]
    for model in ctx.app.models:
        profile = _profile(ctx, model.name)
        out.append(f"<h2 class=model>{esc(model.name)}</h2>")
        names = model.features or ctx.app.features.names()
        out += [_feature(ctx, model.name, f, profile) for f in names]
    return "".join(out)
