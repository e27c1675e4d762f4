"""Prometheus metrics of the outcome joiner (``loopline_outcomes_*``), labelled by application."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISIONS = Counter("loopline_outcomes_decisions", "Decisions read by the outcome joiner.", ["app"])
OUTCOMES = Counter("loopline_outcomes_outcomes", "Outcomes read by the outcome joiner.", ["app"])
MATCHED = Counter("loopline_outcomes_matched", "Outcomes joined to a decision.", ["app"])
LATE = Counter(
    "loopline_outcomes_late",
    "Outcomes that joined no decision (after the window, or no decision): to <app>.outcomes.late.",
    ["app"],
)
LATE_DECISIONS = Counter(
    "loopline_outcomes_late_decisions",
    "Decisions read after their attribution window had closed: not joined.",
    ["app"],
)
DUPLICATES = Counter(
    "loopline_outcomes_duplicate_decisions", "Decisions read again (same id), ignored.", ["app"]
)
EXAMPLES = Counter(
    "loopline_outcomes_examples",
    "Labelled examples by label: positive, negative, or dropped (negatives off).",
    ["app", "label"],
)
OPEN = Gauge("loopline_outcomes_open_decisions", "Decisions whose window is still open.", ["app"])
