"""Alerts: rules over the monitor's windows, and the records they write to ``<app>.alerts``.

An `Alert` names a measure of a closed window (`metric`), how it is judged
(`above` or `below` a fixed `threshold`, or ``"training"``: against the
version's training profile), and for how many consecutive windows it must be
breached before it opens (`windows`). `DEFAULT_ALERTS` are on without
configuration:

- ``coverage_drop``: a feature's coverage more than 10 points below its
  training coverage;
- ``psi``: a feature's PSI above 0.25;
- ``score_mean`` / ``label_rate``: the window's mean score / mean label
  outside the training profile's 99% range for a window of that many rows;
- ``auc_drop``: AUC more than 0.05 below the version's test AUC, once the
  window has at least 200 scored labels;
- ``freshness``: a source topic silent for longer than 10x its usual
  interval between records (judged by the clock, `loopline.monitor.sources`).

The metrics ``error_rate`` (the share of a window's requests that failed)
and ``unknown_rate`` (the share refused for an unknown entity) are not among
the defaults: ``Alert("errors", "error_rate", above=0.01, min_rows=100)`` in
`App(alerts=...)` turns one on.

An `AlertRecord` says ``opened`` when a rule has been breached for its
windows, ``updated`` for each further breached window, and ``resolved`` at
the first window that is not, with the evidence: the window, the value, the
baseline, the threshold and the counts it was computed from. An open alert
whose scope has no judged window for three windows while its source's
windows go on (a canary rolled back, a segment gone quiet) is ``resolved``
too, with no value and a `reason` saying so: nothing judges it any more.

>>> rule = Alert("coverage_drop", "coverage", below="training", by=0.10)
>>> rule.breached(0.55, 0.70), rule.breached(0.65, 0.70)
(True, False)
>>> Alert("psi", "psi", above=0.25).breached(0.3, None)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

__all__ = ["DEFAULT_ALERTS", "Alert", "AlertRecord"]

Metric = Literal[
    "coverage", "psi", "score_mean", "label_rate", "auc", "freshness", "error_rate", "unknown_rate"
]


@dataclass(frozen=True)
class Alert:
    """One alert rule (see the module docstring).

    `above`/`below`: a number, or ``"training"`` for the training baseline
    (coverage, AUC: minus `by`; means: the profile's 99% range, either side);
    `windows`: consecutive breached windows before it opens; `min_rows`: the
    fewest rows (candidates, labels) a window needs to be judged at all.
    """

    name: str
    metric: Metric
    above: float | Literal["training"] | None = None
    below: float | Literal["training"] | None = None
    by: float = 0.0
    windows: int = 1
    min_rows: int = 1

    def __post_init__(self) -> None:
        if self.above is None and self.below is None:
            raise ValueError(
                f"alert {self.name!r} needs a threshold: above=0.25, below=0.5, or "
                "below='training' (against the version's training profile)"
            )
        if self.windows < 1:
            raise ValueError(f"alert {self.name!r}: windows must be at least 1, not {self.windows}")

    def limits(self, baseline: float | None) -> tuple[float | None, float | None]:
        """The (low, high) a value must stay within, for this `baseline`."""

        def side(limit: float | str | None, sign: float) -> float | None:
            if limit == "training":
                return None if baseline is None else baseline + sign * self.by
            return limit  # type: ignore[return-value]

        return side(self.below, -1.0), side(self.above, 1.0)

    def breached(self, value: float | None, baseline: float | None) -> bool:
        """Whether `value` is outside the limits (a missing value or baseline never is)."""
        if value is None:
            return False
        low, high = self.limits(baseline)
        return (low is not None and value < low) or (high is not None and value > high)


DEFAULT_ALERTS: tuple[Alert, ...] = (
    Alert("coverage_drop", "coverage", below="training", by=0.10),
    Alert("psi", "psi", above=0.25, min_rows=50),
    Alert("score_mean", "score_mean", below="training", above="training", min_rows=30),
    Alert("label_rate", "label_rate", below="training", above="training", min_rows=30),
    Alert("auc_drop", "auc", below="training", by=0.05, min_rows=200),
    Alert("freshness", "freshness", above=10.0),
)
"""The rules of an `App` whose ``alerts`` is None: coverage 10 points below training, PSI
above 0.25, a score or label mean outside the training profile's 99% range, AUC 0.05 below
the test AUC, and a source silent for 10x its usual interval."""


class AlertRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One change of an alert on ``<app>.alerts``, keyed by `id` (rule and scope)."""

    id: str
    alert: str
    state: Literal["opened", "updated", "resolved"]
    metric: str
    scope: str  # model:version:arm:segment, or the source topic
    feature: str = ""
    window: str = ""
    start: int = 0
    end: int = 0
    value: float | None = None
    baseline: float | None = None
    low: float | None = None
    high: float | None = None
    rows: int = 0  # what the value was computed from
    breaches: int = 0  # consecutive breached windows so far
    opened_at: int = 0
    at: int = 0
    reason: str = ""  # why it resolved without a window that was fine, if so
