"""Prometheus metrics of the prediction service and its decision log.

Defined once per process and labelled by application (and model), as
prometheus-client expects; ``GET /metrics`` of the service serves them with
every other loopline metric of the process (the online store's freshness, and
the request counts and latencies of `loopline.http.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

MISSING_FEATURES = Counter(
    "loopline_serving_missing_features",
    "Feature values served without a value: the declared default (None: NaN to the model).",
    ["app", "model", "feature"],
)
MODEL_VERSION = Gauge(
    "loopline_serving_model_version",
    "The model version this service answers with.",
    ["app", "model"],
)
SWAPS = Counter(
    "loopline_serving_model_swaps",
    "New model versions checked and swapped in without a restart.",
    ["app", "model"],
)
REFUSED = Counter(
    "loopline_serving_models_refused",
    "Model versions refused (signature, feature list or a failed test score); the old kept serving.",
    ["app", "model"],
)
EXPERIMENT_REQUESTS = Counter(
    "loopline_serving_experiment_requests",
    "Requests answered by each arm of an experiment (none counted with no experiment running).",
    ["app", "model", "experiment", "arm"],
)
DECISIONS_BACKLOG = Gauge(
    "loopline_decisions_backlog",
    "Decisions in the local durable journal, not yet acknowledged by the log.",
    ["app"],
)
DECISIONS_PENDING = Gauge(
    "loopline_decisions_pending",
    "Decisions queued in memory for the next journal write.",
    ["app"],
)
DECISIONS_WRITTEN = Counter(
    "loopline_decisions_written",
    "Decisions the log acknowledged.",
    ["app"],
)
DECISIONS_DROPPED = Counter(
    "loopline_decisions_dropped",
    "Decisions not on the decisions topic: the journal was full or unwritable, the decision "
    "was too large for the topic (dead-lettered), or (a bug) it broke its contract.",
    ["app"],
)


@dataclass(frozen=True)
class DecisionMetrics:
    """The decision-log metrics of one application, labelled once."""

    backlog: Gauge
    pending: Gauge
    written: Counter
    dropped: Counter


def decision_metrics(app: str) -> DecisionMetrics:
    return DecisionMetrics(
        DECISIONS_BACKLOG.labels(app),
        DECISIONS_PENDING.labels(app),
        DECISIONS_WRITTEN.labels(app),
        DECISIONS_DROPPED.labels(app),
    )
