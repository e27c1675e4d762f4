"""The outcome joiner: decisions + outcomes -> labelled examples, exactly once.

`OutcomeJoiner` reads ``<app>.decisions`` and ``<app>.outcomes`` in the
consumer group ``<app>-outcomes``. Both are keyed by entity, so partition p
of one holds the same entities as partition p of the other; each partition
number has a `JoinState`. When a decision's attribution window closes, its
labelled examples go to ``<app>.labelled``; an outcome that joins no decision
goes to ``<app>.outcomes-late`` with the reason; an unreadable record goes to
``<topic>.dlq``. Every state change goes to the compacted changelog
``<app>-outcomes-changelog`` in the same transaction as those records and
the input offsets, so after a ``kill -9`` and a restart no labelled example
is lost or written twice. (One joiner per application: the state of
partition p needs partition p of both topics.)

>>> import datetime, json, tempfile
>>> from loopline.log import open_log
>>> from loopline.outcomes.declarations import Outcomes
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> app = App("churn", outcomes=Outcomes(window="1m"))
>>> joiner = OutcomeJoiner(log, app)
>>> producer = log.producer()
>>> decision = {"decision_id": "d-1", "at": "2024-05-01T12:00:00Z", "kind": "predict",
...     "model": "churn", "model_version": 1, "entity_name": "member", "entity": "m-1",
...     "context": {}, "candidates": [{"id": "m-1", "score": 0.3, "features": {"x": 1}}],
...     "returned": [{"id": "m-1", "score": 0.3, "probability": 1.0}], "latency_ms": 0.2}
>>> t = 1714564800000
>>> producer.send("churn.decisions", json.dumps(decision).encode(), b"m-1", timestamp=t)
>>> outcome = {"entity": "m-1", "type": "churned", "at": "2024-05-01T12:00:05Z", "decision_id": "d-1"}
>>> producer.send("churn.outcomes", json.dumps(outcome).encode(), b"m-1", timestamp=t + 5000)
>>> producer.flush()
2
>>> stats = joiner.run_until_caught_up(clock=lambda: t + 120_000)  # a minute later: closed
>>> stats.examples, stats.positives, stats.matched
(1, 1, 1)
>>> joiner.close(); producer.close(); log.close()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from loopline.app import App, AppError
from loopline.contracts.deadletters import dead_letter, dlq_topic
from loopline.log import Log, LogError, Record, TopicConfig, TopicExists, TopicPartition
from loopline.outcomes import metrics
from loopline.outcomes.labelled import labelled_topic
from loopline.outcomes.outcome import Outcome
from loopline.outcomes.state import JoinState, Late

__all__ = ["JoinerStats", "OutcomeJoiner"]

logger = logging.getLogger(__name__)

LATE_REASON = "loopline.late.reason"


@dataclass
class JoinerStats:
    """What an `OutcomeJoiner` did since it started."""

    decisions: int = 0
    outcomes: int = 0
    matched: int = 0
    late: int = 0
    duplicates: int = 0
    examples: int = 0
    positives: int = 0
    negatives: int = 0
    dropped: int = 0
    dead_letters: int = 0
    commits: int = 0
    aborts: int = 0


class OutcomeJoiner:
    """Joins the outcomes of application `app` to its decisions (see the module docstring)."""

    def __init__(
        self,
        log: Log,
        app: App,
        *,
        instance: str = "0",
        commit_interval: float = 0.5,
        max_batch: int = 5_000,
    ) -> None:
        if app.outcomes is None:
            raise AppError(
                f"application {app.name!r} declares no outcomes: add "
                "outcomes=Outcomes(window='1h', positive=['click']) to its App(...)"
            )
        self.log, self.app, self.outcomes = log, app, app.outcomes
        self.decisions_topic, self.outcomes_topic = f"{app.name}.decisions", f"{app.name}.outcomes"
        self.labelled, self.late = labelled_topic(app.name), f"{app.name}.outcomes-late"
        self.changelog = f"{app.name}-outcomes-changelog"
        self.group = f"{app.name}-outcomes"
        self.commit_interval, self.max_batch = commit_interval, max_batch
        self.stats = JoinerStats()
        self._partitions = self._ensure_topics()
        self._consumer = log.consumer(
            self.group, [self.decisions_topic, self.outcomes_topic], reset="earliest"
        )
        self._producer = log.producer(transactional_id=f"{self.group}-{instance}")
        self._states: dict[int, JoinState] = {}
        self._dirty: set[int] = set()
        self._in_transaction = False
        self._open = metrics.OPEN.labels(app.name)

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_caught_up: bool = False,
        on_commit: Callable[[OutcomeJoiner], None] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> JoinerStats:
        """Join until `stop` is set (or, with `until_caught_up`, nothing is left to read).

        When the joiner has read everything, windows that ended before the
        wall clock (`clock`, epoch ms) minus the lateness close too.
        """
        stop = stop or threading.Event()
        clock = clock or (lambda: time.time_ns() // 1_000_000)
        last_commit = time.monotonic()
        while not stop.is_set():
            records = self._consumer.poll(self.max_batch, timeout=0.2)
            if self._follow_assignment():
                records = []
            elif records:
                owned = set(self._consumer.assignment())
                records = [r for r in records if TopicPartition(r.topic, r.partition) in owned]
            if records:
                self._apply(records)
            caught_up = not records and not any(self._consumer.lag().values())
            if caught_up:
                self._close_by_clock(clock())
            due = time.monotonic() - last_commit >= self.commit_interval
            if self._in_transaction and (due or not records):
                self._commit()
                last_commit = time.monotonic()
                if on_commit is not None:
                    on_commit(self)
            if caught_up and until_caught_up and not self._in_transaction:
                break
        if self._in_transaction:
            self._commit()
        return self.stats

    def run_until_caught_up(self, clock: Callable[[], int] | None = None) -> JoinerStats:
        """Join everything present now, close the windows the clock has passed, and return."""
        return self.run(until_caught_up=True, clock=clock)

    def close(self) -> None:
        """Leave the group (an open transaction is aborted) and release resources."""
        if self._in_transaction:
            with contextlib.suppress(LogError):
                self._producer.abort_transaction()
        self._consumer.close()
        self._producer.close()

    # -- joining --------------------------------------------------------------------------

    def _state(self, partition: int) -> JoinState:
        state = self._states.get(partition)
        if state is None:
            state = self._states[partition] = self._restore(partition)
        return state

    def _begin(self) -> None:
        if not self._in_transaction:
            self._producer.begin_transaction()
            self._in_transaction = True

    def _apply(self, records: list[Record]) -> None:
        for partition in {r.partition for r in records}:
            self._state(partition)
        self._begin()
        for record in records:
            state = self._states[record.partition]
            joined = state.joined
            try:
                if record.topic == self.decisions_topic:
                    decision = _decode_decision(record.value)
                    self.stats.decisions += 1
                    metrics.DECISIONS.labels(self.app.name).inc()
                    before = state.duplicates
                    done = state.decision(decision, record.timestamp)
                    if state.duplicates != before:
                        self.stats.duplicates += 1
                        metrics.DUPLICATES.labels(self.app.name).inc()
                else:
                    outcome = _decode_outcome(record.value)
                    self.stats.outcomes += 1
                    done = state.outcome(outcome, record.timestamp, key=f"{record.offset}")
            except ValueError as exc:
                key, value, headers = dead_letter(record, str(exc), None, None)
                self._producer.send(dlq_topic(record.topic), value, key, headers=headers)
                self.stats.dead_letters += 1
                continue
            if state.joined > joined:
                self.stats.matched += state.joined - joined
                metrics.MATCHED.labels(self.app.name).inc(state.joined - joined)
            self._emit(record.partition, *done)
            self._dirty.add(record.partition)

    def _close_by_clock(self, now: int) -> None:
        for partition, state in self._states.items():
            if not state.open and not state.waiting:
                continue
            joined = state.joined
            examples, late = state.close_until(now)
            if state.joined > joined:
                self.stats.matched += state.joined - joined
                metrics.MATCHED.labels(self.app.name).inc(state.joined - joined)
                self._begin()
                self._dirty.add(partition)
            if examples or late:
                self._begin()
                self._emit(partition, examples, late)
                self._dirty.add(partition)

    def _emit(self, partition: int, examples: list[dict], late: list[Late]) -> None:
        send = self._producer.send
        for example in examples:
            positive = example["label"] > 0
            if not positive and not self.outcomes.negatives:
                self.stats.dropped += 1
                metrics.EXAMPLES.labels(self.app.name, "dropped").inc()
                continue
            send(
                self.labelled,
                msgspec.json.encode(example),
                example["entity"].encode(),
                timestamp=example["at"],
                partition=partition,
            )
            self.stats.examples += 1
            if positive:
                self.stats.positives += 1
            else:
                self.stats.negatives += 1
            metrics.EXAMPLES.labels(self.app.name, "positive" if positive else "negative").inc()
        for outcome, at, why in late:
            send(
                self.late,
                msgspec.json.encode(outcome),
                str(outcome.get("entity", "")).encode(),
                timestamp=at,
                headers=((LATE_REASON, why.encode()),),
                partition=partition,
            )
            self.stats.late += 1
            metrics.LATE.labels(self.app.name).inc()

    # -- committing -----------------------------------------------------------------------

    def _commit(self) -> None:
        producer = self._producer
        try:
            for partition in sorted(self._dirty):
                for key, value in self._states[partition].take_changes():
                    data = None if value is None else msgspec.json.encode(value)
                    producer.send(self.changelog, data, key.encode(), partition=partition)
            producer.send_offsets(self._consumer)
            producer.commit_transaction()
        except LogError as exc:
            logger.warning("outcome joiner: commit failed (%s); recovering from the log", exc)
            self._recover()
            return
        finally:
            self._in_transaction = False
            self._dirty = set()
        self.stats.commits += 1
        self._open.set(sum(len(s.open) for s in self._states.values()))

    def _recover(self) -> None:
        """After a failed commit: drop all state and resume from what the log committed."""
        self.stats.aborts += 1
        with contextlib.suppress(LogError):
            self._producer.abort_transaction()
        self._states.clear()
        committed = self._consumer.committed(self._consumer.assignment())
        for tp, offset in committed.items():
            if offset is None:
                self._consumer.seek_to_beginning([tp])
            else:
                self._consumer.seek(tp, offset)

    def _follow_assignment(self) -> bool:
        """Drop the states of partitions this member lost; True when it had to rewind."""
        owned = {tp.partition for tp in self._consumer.assignment()}
        gone = self._states.keys() - owned
        if not gone:
            return False
        rewound = False
        if self._in_transaction:
            self._in_transaction = False
            self._dirty = set()
            self._recover()
            rewound = True
        for partition in gone:
            self._states.pop(partition, None)
        return rewound

    # -- restoring ------------------------------------------------------------------------

    def _restore(self, partition: int) -> JoinState:
        from loopline.features.processor import read_partitions

        state = JoinState(self.outcomes)
        ends = {p.partition: p.end for p in self.log.describe_topic(self.changelog).partitions}
        if ends.get(partition, 0) > 0:
            wanted = {TopicPartition(self.changelog, partition)}
            for _, record in read_partitions(self.log, self.changelog, wanted, ends):
                value = None if record.value is None else msgspec.json.decode(record.value)
                state.load(record.key.decode(), value)
        state.take_changes()  # restored entries are in the changelog already
        return state

    def _ensure_topics(self) -> int:
        counts = {}
        for topic in (self.decisions_topic, self.outcomes_topic):
            try:
                counts[topic] = len(self.log.describe_topic(topic).partitions)
            except LogError:
                counts[topic] = None
        known = {n for n in counts.values() if n is not None}
        if len(known) > 1:
            raise AppError(
                f"{self.decisions_topic} has {counts[self.decisions_topic]} partitions and "
                f"{self.outcomes_topic} {counts[self.outcomes_topic]}: decisions and outcomes "
                "are joined partition by partition, so give both the same number"
            )
        partitions = known.pop() if known else 1
        for topic, n in counts.items():
            if n is None:
                with contextlib.suppress(TopicExists):
                    self.log.create_topic(topic, TopicConfig(partitions=partitions))
        for topic, compact in ((self.labelled, False), (self.late, False), (self.changelog, True)):
            with contextlib.suppress(TopicExists):
                self.log.create_topic(topic, TopicConfig(partitions=partitions, compact=compact))
        for topic in (self.decisions_topic, self.outcomes_topic):
            with contextlib.suppress(TopicExists):
                self.log.create_topic(dlq_topic(topic))
        return partitions


_DECISION_FIELDS = ("decision_id", "kind", "model", "model_version", "entity", "candidates")


def _decode_decision(value: bytes | None) -> dict[str, Any]:
    try:
        decision = msgspec.json.decode(value or b"")
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a decision (loopline.decision): {exc}") from None
    if not isinstance(decision, dict) or any(f not in decision for f in _DECISION_FIELDS):
        raise ValueError(f"not a decision (loopline.decision): needs {', '.join(_DECISION_FIELDS)}")
    decision.setdefault("returned", [])
    return decision


def _decode_outcome(value: bytes | None) -> dict[str, Any]:
    try:
        outcome = msgspec.json.decode(value or b"", type=Outcome)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not an outcome (loopline.outcome): {exc}") from None
    return msgspec.structs.asdict(outcome) | {"at": outcome.at.isoformat()}
