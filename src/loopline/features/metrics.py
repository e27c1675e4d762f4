"""Prometheus metrics of online features (the processor and the online store).

Defined once per process, labelled by application, as prometheus-client
expects; `loopline features run --metrics-port` serves them. What every stage
has in common (records, dead letters, commits, lag) is `loopline_stream_*`
(`loopline.stream.sensor`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Freshness spans sub-second (a live feed) to hours (a backlog, or records
# stamped with old event times), so the buckets do too.
_FRESHNESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)

LATE_RECORDS = Counter(
    "loopline_features_late_records",
    "Source records that arrived later than the declared lateness; sent to the late topic.",
    ["app", "source"],
)
FRESHNESS = Histogram(
    "loopline_features_freshness_seconds",
    "Time from a source record's append (its log timestamp) to its effect being committed "
    "to the changelog: the oldest record of each transaction.",
    ["app"],
    buckets=_FRESHNESS_BUCKETS,
)
STORE_FRESHNESS = Histogram(
    "loopline_features_store_freshness_seconds",
    "Time from a source record's append to its effect being readable in an online store.",
    ["app"],
    buckets=_FRESHNESS_BUCKETS,
)
ENTITIES = Gauge(
    "loopline_features_entities",
    "Entities with aggregation state in this processor.",
    ["app", "entity"],
)
DERIVED_ERRORS = Counter(
    "loopline_features_derived_errors",
    "Reads of a derived feature whose function raised: the feature took its default.",
    ["app", "feature"],
)
