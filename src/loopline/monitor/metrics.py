"""Prometheus gauges of the monitor (``loopline_monitor_*``), set when a window closes.

Labelled by application, window size, model, version, arm and segment (and
feature); each gauge holds the latest closed window's value.
"""

from __future__ import annotations

from prometheus_client import Gauge

from loopline.monitor.records import MonitorRecord

KEY = ["app", "window", "model", "version", "arm", "segment"]

DECISIONS = Gauge("loopline_monitor_decisions", "Decisions in the last closed window.", KEY)
ERRORS = Gauge(
    "loopline_monitor_errors", "Failed requests (decisions with an error) in the last window.", KEY
)
UNKNOWN = Gauge(
    "loopline_monitor_unknown_entities",
    "Requests refused for an unknown entity (a 404) in the last window.",
    KEY,
)
LATENCY = Gauge(
    "loopline_monitor_latency_ms",
    "Latency percentile of the last closed window.",
    [*KEY, "quantile"],
)
SCORE_MEAN = Gauge("loopline_monitor_score_mean", "Mean score in the last closed window.", KEY)
COVERAGE = Gauge(
    "loopline_monitor_feature_coverage",
    "Share of served values neither missing nor the default.",
    [*KEY, "feature"],
)
PSI = Gauge(
    "loopline_monitor_feature_psi", "PSI of a served feature against training.", [*KEY, "feature"]
)
LABELS = Gauge("loopline_monitor_labels", "Labelled examples in the last closed window.", KEY)
LABEL_MEAN = Gauge("loopline_monitor_label_mean", "Mean label in the last closed window.", KEY)
AUC = Gauge("loopline_monitor_auc", "AUC of the last closed window.", KEY)


def observe(app: str, r: MonitorRecord) -> None:
    """Set the gauges from record `r`."""
    key = (app, r.window, r.model, str(r.model_version), r.arm, r.segment)
    if r.source == "decisions":
        DECISIONS.labels(*key).set(r.decisions)
        ERRORS.labels(*key).set(r.errors)
        UNKNOWN.labels(*key).set(r.unknown)
        for q, v in (("0.5", r.latency_p50), ("0.95", r.latency_p95), ("0.99", r.latency_p99)):
            if v is not None:
                LATENCY.labels(*key, q).set(v)
        if r.score_mean is not None:
            SCORE_MEAN.labels(*key).set(r.score_mean)
        for f in r.features:
            if f.coverage is not None:
                COVERAGE.labels(*key, f.name).set(f.coverage)
            if f.psi is not None:
                PSI.labels(*key, f.name).set(f.psi)
    else:
        LABELS.labels(*key).set(r.labels)
        if r.label_mean is not None:
            LABEL_MEAN.labels(*key).set(r.label_mean)
        if r.auc is not None:
            AUC.labels(*key).set(r.auc)


SOURCE_AGE = Gauge(
    "loopline_monitor_source_age_seconds",
    "Age of a source topic's newest record.",
    ["app", "topic"],
)
SOURCE_RECORDS = Gauge(
    "loopline_monitor_source_records",
    "Records of a source topic read by the monitor.",
    ["app", "topic"],
)
SOURCE_RATE = Gauge(
    "loopline_monitor_source_records_per_second",
    "A source topic's usual rate: 1 / its usual interval between records.",
    ["app", "topic"],
)
ALERTS_OPEN = Gauge("loopline_monitor_alerts_open", "Alerts open now.", ["app"])
SOURCE_LAG = Gauge(
    "loopline_monitor_source_lag",
    "Records of a source topic after a consumer group's committed offsets, at the last "
    "closed window.",
    ["app", "topic", "group"],
)


def observe_feed(app: str, r: MonitorRecord) -> None:
    """Set the lag gauges from feed record `r`."""
    for lag in r.lags:
        SOURCE_LAG.labels(app, r.topic, lag.group).set(lag.lag)
