"""Experiment reports for the Experiments page: computed in a background thread, kept with the
offsets they cover.

`loopline experiments report` (`loopline.experiments.report.report`) reads
the decisions and labelled examples: seconds per hundred thousand decisions,
far more than a page's 200 ms. So a page asks `ExperimentReports.get`, which
answers at once with what it holds (or None: "computing…") and, when nothing
is held or what is held is older than `every` seconds and the topics have
grown since, queues the experiment for one worker thread (one report at a
time: the dashboard shares the machine with the loop). A `Report` says which
end offsets of ``<app>.decisions`` and ``<app>.labelled`` it covers, when it
was computed and how long it took (decision 0037).

The report is broken down by the context fields of the application's newest
decisions that hold text or a boolean (``page``, ``country``; at most
`MAX_SEGMENTS`, the unit's field left out): the decisions say which fields
their application has (the experiment's own may be long gone from the end of
the topic), and numbers would make a row per value.

>>> context_segments({"page": "home", "views": 3, "member_id": "m1", "new": True}, "context.member_id")
['page', 'new']
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from loopline.experiments.records import ExperimentError
from loopline.experiments.report import report
from loopline.experiments.report_data import Segment
from loopline.log import Log, LogError, TopicPartition
from loopline.stream import names

__all__ = ["MAX_SEGMENTS", "ExperimentReports", "Report", "context_segments"]

logger = logging.getLogger(__name__)

MAX_SEGMENTS = 3
EVERY = 30.0  # seconds a report is shown before a newer one is computed (if the topics grew)


@dataclass(frozen=True)
class Report:
    """A report of experiment `name` (`result`: the CLI's JSON dict; `error`: why there is
    none), covering `covers` (topic -> sum of end offsets when it was read)."""

    name: str
    result: dict[str, Any] | None
    error: str
    covers: dict[str, int]
    computed_at: float  # epoch seconds
    seconds: float  # how long it took
    segments: list[str] = field(default_factory=list)


def context_segments(context: Mapping[str, Any], unit: str) -> list[str]:
    """The context fields of a decision worth a segment row each: text and booleans."""
    unit_field = unit.removeprefix("context.")
    return [k for k, v in context.items() if isinstance(v, str | bool) and k != unit_field][
        :MAX_SEGMENTS
    ]


class _Newest(msgspec.Struct):
    experiment: str | None = None
    context: dict[str, Any] = {}


class ExperimentReports:
    """Reports of application `app_name`'s experiments on `log`, one worker thread."""

    def __init__(self, log: Log, app_name: str, *, every: float = EVERY) -> None:
        self.log, self.app_name, self.every = log, app_name, every
        self._lock = threading.Lock()
        self._held: dict[str, Report] = {}
        self._queued: list[tuple[str, str]] = []  # (name, unit)
        self._busy: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-reports", daemon=True)
        self._thread.start()

    def get(self, name: str, unit: str = "entity") -> Report | None:
        """What is held for experiment `name` (None: nothing yet); queues a newer one when
        nothing is held, or what is held is old and the topics grew since."""
        with self._lock:
            held = self._held.get(name)
            queued = self._busy == name or any(n == name for n, _ in self._queued)
        if not queued and (held is None or self._stale(held)):
            with self._lock:  # another request may have queued it meanwhile
                if self._busy != name and all(n != name for n, _ in self._queued):
                    self._queued.append((name, unit))
            self._wake.set()
        return held

    def computing(self, name: str) -> bool:
        with self._lock:
            return self._busy == name or any(n == name for n, _ in self._queued)

    def _stale(self, held: Report) -> bool:
        if time.time() - held.computed_at < self.every:
            return False
        try:
            return self._ends() != held.covers
        except LogError:
            return False

    def _ends(self) -> dict[str, int]:
        out = {}
        for topic in (names.decisions(self.app_name), names.labelled(self.app_name)):
            try:
                out[topic] = sum(p.end for p in self.log.describe_topic(topic).partitions)
            except LogError:
                out[topic] = 0
        return out

    def _segments(self, name: str, unit: str) -> list[str]:
        """The context segments of the newest decisions (`name`'s when among them)."""
        topic = names.decisions(self.app_name)
        decode = msgspec.json.Decoder(_Newest).decode
        consumer = self.log.consumer(None, [topic], reset="latest")
        try:
            for p in self.log.describe_topic(topic).partitions:
                consumer.seek(TopicPartition(topic, p.partition), max(p.start, p.end - 50))
            deadline = time.monotonic() + 2.0
            found: dict[str, Any] | None = None
            mine = False
            while time.monotonic() < deadline:
                batch = consumer.poll(500, timeout=0.5)
                for record in batch:
                    try:
                        newest = decode(record.value or b"{}")
                    except msgspec.DecodeError:
                        continue
                    if newest.context and (newest.experiment == name or not mine):
                        found, mine = newest.context, newest.experiment == name
                if not batch and found is not None:
                    break
            return context_segments(found or {}, unit)
        finally:
            consumer.close()

    def compute(self, name: str, unit: str = "entity") -> Report:
        """Compute the report of `name` now (what the worker does)."""
        started = time.monotonic()
        covers = self._ends()
        segments: list[str] = []
        try:
            segments = self._segments(name, unit)
            result = report(self.log, self.app_name, name, [Segment.parse(s) for s in segments])
            error = ""
        except (ExperimentError, LogError) as exc:
            result, error = None, str(exc)
        return Report(
            name, result, error, covers, time.time(), time.monotonic() - started, segments
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                name, unit = self._queued.pop(0) if self._queued else (None, "")
                self._busy = name
            if name is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                done = self.compute(name, unit)
            except Exception:  # a report must never take the dashboard down
                logger.exception("the report of experiment %r failed", name)
                done = Report(name, None, "the report failed: see the dashboard's log", {},
                              time.time(), 0.0)  # fmt: skip
            with self._lock:
                self._held[name] = done
                self._busy = None

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
