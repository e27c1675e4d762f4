"""Prometheus metrics of the experiment watcher (``loopline_experiments_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTCOMES = Counter(
    "loopline_experiments_outcomes",
    "Labelled examples of an experiment arm counted by the watcher.",
    ["app", "experiment", "arm"],
)
CHANGES = Counter(
    "loopline_experiments_changes",
    "Changes the watcher wrote to an experiment (weights, step, rollback, conclusion), "
    "or refused because a person changed it first (conflict).",
    ["app", "experiment", "kind"],
)
WEIGHT = Gauge(
    "loopline_experiments_weight",
    "An arm's share of the traffic, as the watcher last saw or wrote it.",
    ["app", "experiment", "arm"],
)
PRIMARY = Gauge(
    "loopline_experiments_primary",
    "An arm's primary metric over its outcomes so far, at the watcher's last look.",
    ["app", "experiment", "arm"],
)
