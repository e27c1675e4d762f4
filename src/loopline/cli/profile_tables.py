"""A training profile as people read it: ``loopline models show NAME --profile``.

Two tables: one row per feature (counts, coverage, moments, quantiles and
the histogram drawn as a bar per bin, or the top categories with their
shares), then the scores and labels of the held-out rows with the range a
served window's mean should stay in (`loopline.models.profiles.Spread`).

>>> spark([0, 1, 2, 4])
' ▂▄█'
>>> number(0.000123456), number(None), percent(0.25)
('0.0001235', '', '25.0%')
"""

from __future__ import annotations

from loopline.cli.output import echo_table
from loopline.models.profiles import FeatureProfile, Profile

BARS = " ▁▂▃▄▅▆▇█"
WINDOW = 1000  # rows of the served window the printed 99% range is for


def spark(counts: list[int]) -> str:
    """One character per bin, its height the bin's count against the largest (blank: empty)."""
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(
        BARS[0] if c == 0 else BARS[max(1, round(c / top * (len(BARS) - 1)))] for c in counts
    )


def number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def percent(share: float) -> str:
    return f"{share:.1%}"


def _median(feature: FeatureProfile) -> float | None:
    return next((v for q, v in feature.quantiles if q == 0.5), None)


def _distribution(feature: FeatureProfile) -> str:
    if feature.kind == "category":
        shown = [f"{label} {share:.0%}" for label, share in feature.shares() if share > 0]
        return ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")
    return spark(feature.histogram.counts)


def echo_profile(profile: Profile, title: str) -> None:
    """`profile` as two tables (features, then predictions) titled after `title`."""
    rows = [
        [
            f.name,
            f.kind,
            str(f.count),
            percent(f.null_rate),
            percent(f.default_rate),
            percent(f.coverage),
            number(f.mean),
            number(f.std),
            number(f.min),
            number(_median(f)),
            number(f.max),
            _distribution(f),
        ]
        for f in profile.features
    ]
    echo_table(
        f"{title}: features over {profile.rows:,} training rows",
        [
            "feature",
            "kind",
            "count",
            "null",
            "default",
            "coverage",
            "mean",
            "std",
            "min",
            "median",
            "max",
            "histogram / top categories",
        ],
        rows,
    )
    predictions = profile.predictions
    if predictions is None:
        return
    rows = []
    for what, spread in (("score", predictions.score), ("label", predictions.label)):
        low, high = spread.interval(WINDOW)
        chunks = spread.chunk_means
        rows.append(
            [
                what,
                number(spread.mean),
                number(spread.std),
                f"{number(min(chunks, default=None))} .. {number(max(chunks, default=None))}",
                f"{number(low)} .. {number(high)}",
                spark(predictions.histogram.counts) if what == "score" else "",
            ]
        )
    echo_table(
        f"{title}: {predictions.task} predictions over {predictions.rows:,} later rows",
        [
            "",
            "mean",
            "std",
            f"mean of {len(predictions.score.chunk_means)} time chunks",
            f"99% range, {WINDOW:,}-row window",
            "histogram",
        ],
        rows,
    )
