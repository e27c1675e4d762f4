"""The ``<app>.monitor`` record contract: one record per window, key and source.

The monitor (`loopline.monitor.task`) writes a `MonitorRecord` (contract
``loopline.monitor`` v1, JSON) to ``<app>.monitor`` when a window closes,
keyed ``model:version:arm:segment``, stamped with the window's end (epoch ms):

- ``source="decisions"``: from the decisions whose time (``at``) is in the
  window: ``decisions`` and ``candidates`` counted, ``errors`` (requests that
  failed: decisions with an ``error``) and ``error_rate``, ``unknown`` (requests
  refused for an entity the online features hold nothing of, a 404) and
  ``unknown_rate``, latency percentiles
  of the answered requests (ms, within 1%: `loopline.monitor.sketch`), the score's count/mean/std and its
  PSI against the version's held-out scores, and per feature a `FeatureStats`.
- ``source="labelled"``: from the labelled examples whose label became known
  (``closed_at``) in the window: ``labels`` counted, mean label (the
  acceptance rate for 0/1 labels), log loss, AUC and expected calibration
  error (`loopline.monitor.quality`) with ``scored`` (the examples that had a
  score). Labelled examples carry no context: their segment is always "".
- ``source="feeds"``: one of the application's source topics (`topic`; the
  record is keyed by it, model and version are empty): its ``records`` whose
  time is in the window and ``records_per_second``, the newest record time
  seen by then and the feed's ``age_seconds`` at the window's end, and per
  consumer group reading it (`GroupLag`) the records it had not committed
  when the window closed (`loopline.monitor.feeds`).

Every measure comes with the count it was computed from; a measure that
does not exist for the window (no profile, one class) is null.

>>> r = MonitorRecord(source="decisions", window="1m", start=0, end=60000, model="churn",
...     model_version=3, arm="", segment="", decisions=2, candidates=2)
>>> r.key, msgspec.json.decode(msgspec.json.encode(r), type=MonitorRecord) == r
('churn:3::', True)
>>> from loopline.contracts import avro_schema
>>> [f["name"] for f in avro_schema(MonitorRecord)["fields"]][:3]
['source', 'window', 'start']
>>> monitor_topic("shop").name, monitor_topic("shop").contract
('shop.monitor', 'loopline.monitor')
"""

from __future__ import annotations

import enum

import msgspec

from loopline.contracts import Topic
from loopline.stream import names

__all__ = ["CONTRACT", "FeatureStats", "GroupLag", "MonitorRecord", "Source", "monitor_topic"]

CONTRACT = "loopline.monitor"


class FeatureStats(msgspec.Struct, frozen=True, kw_only=True):
    """One feature as served in a window: over `rows` candidates, the share `coverage`
    neither missing nor the profile's default, the `mean` of the present numbers
    (booleans as 0/1), and against the version's training profile (null without one)
    `training_coverage`, `psi`, `jensen_shannon` and `wasserstein` (numbers only), and
    `bins`: the present values counted in the profile's histogram bins, whose
    `Histogram.bins_id` is `bins_id`, so a reader can draw the distribution served
    beside the one trained on (both added to the contract with defaults: the
    backward rule holds)."""

    name: str
    rows: int
    present: int
    covered: int
    coverage: float | None
    mean: float | None
    training_coverage: float | None = None
    psi: float | None = None
    jensen_shannon: float | None = None
    wasserstein: float | None = None
    bins: list[int] | None = None
    bins_id: str | None = None


# What a record counts. Its Avro enum keeps the name version 1 of the contract gave it (then a
# Literal of the first two: Avro matches enums by name), so adding "feeds" is backward compatible
# with the records and the schema already on a log.
Source = enum.Enum(
    "Literal_decisions_labelled",
    {"decisions": "decisions", "labelled": "labelled", "feeds": "feeds"},
    type=str,
)


class GroupLag(msgspec.Struct, frozen=True, kw_only=True):
    """A consumer group's lag on a source topic: records after its committed offsets, over
    the topic's `partitions`."""

    group: str
    lag: int
    partitions: int


class MonitorRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One window of one key (see the module docstring)."""

    source: Source  # "decisions", "labelled" or "feeds"
    window: str
    start: int
    end: int
    model: str
    model_version: int
    arm: str
    segment: str
    # decisions
    decisions: int = 0
    errors: int = 0  # failed requests (a decision with an `error`), added with a default
    error_rate: float | None = None
    unknown: int = 0  # requests refused for an unknown entity, added with a default
    unknown_rate: float | None = None
    candidates: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    score_count: int = 0
    score_mean: float | None = None
    score_std: float | None = None
    score_psi: float | None = None
    score_low: float | None = None  # the profile's 99% range for the window's mean score
    score_high: float | None = None
    features: list[FeatureStats] = []
    # labelled
    labels: int = 0
    scored: int = 0
    label_mean: float | None = None
    label_low: float | None = None  # the profile's 99% range for the window's mean label
    label_high: float | None = None
    log_loss: float | None = None
    auc: float | None = None
    calibration_error: float | None = None
    # feeds
    topic: str = ""
    records: int = 0
    records_per_second: float | None = None
    newest: int | None = None  # the newest record time (ms) seen by the window's end
    age_seconds: float | None = None  # the window's end minus that newest time
    lags: list[GroupLag] = []

    @property
    def key(self) -> str:
        if self.source == "feeds":
            return self.topic
        return f"{self.model}:{self.model_version}:{self.arm}:{self.segment}"


def monitor_topic(app_name: str) -> Topic[MonitorRecord]:
    """The monitor's output topic of application `app_name` (``<app>.monitor``)."""
    return Topic(
        names.monitor(app_name),
        MonitorRecord,
        key="model",
        time="end",
        encoding="json",
        contract=CONTRACT,
    )
