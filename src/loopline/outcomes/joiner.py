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
is lost or written twice.

Windows close by event time (see `loopline.outcomes.state`) and, once the
joiner has read everything there is, also by the wall clock (`clock`, epoch
ms) minus the lateness: a stream that goes quiet still closes its windows.
The clock is a parameter so that tests (and replays) can hold it.

Run one joiner per application: the state of partition p needs partition p
of both topics. A member that is given one without the other (a second
joiner in the group, or a moment of a rebalance) pauses it and says so.

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
>>> producer.send("churn.outcomes", json.dumps(outcome).encode(), b"m-1", timestamp=t + 5000)
>>> producer.flush()
1
>>> joiner.run_until_caught_up(clock=lambda: t + 120_000).late  # the window has closed
1
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
from loopline.contracts import LogRegistry
from loopline.contracts.codecs import Codec, ContractViolation, JsonCodec
from loopline.contracts.registry import SchemaRegistry
from loopline.contracts.topics import codec_for, event_time
from loopline.log import Log, LogError, Record, TopicConfig, TopicExists, TopicPartition
from loopline.outcomes import metrics
from loopline.outcomes.labelled import labelled_topic
from loopline.outcomes.outcome import Outcome, outcomes_topic
from loopline.outcomes.state import JoinState, Late
from loopline.serving.decisions import Decision, decisions_topic
from loopline.stream.deadletters import dead_letter, dlq_topic
from loopline.stream.ranges import read_partitions

__all__ = ["LATE_REASON", "JoinerStats", "OutcomeJoiner", "wall_clock"]

logger = logging.getLogger(__name__)

LATE_REASON = "loopline.late.reason"


def wall_clock() -> int:
    """Milliseconds since the epoch, now: the default clock of `OutcomeJoiner`."""
    return time.time_ns() // 1_000_000


@dataclass
class JoinerStats:
    """What an `OutcomeJoiner` did since it started.

    `late` counts outcomes that joined no decision; `late_decisions` decisions
    read after their window had closed (not joined); `dropped` label-0
    examples not written because the application declares ``negatives=False``.
    """

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
    late_decisions: int = 0


class OutcomeJoiner:
    """Joins the outcomes of application `app` to its decisions (see the module docstring).

    `registry` (optional): with a `LogRegistry`, the decisions and outcomes
    topics the joiner creates are bound to their contracts; a topic bound to
    a contract (any registry) is decoded with it, JSON or Avro, and its dead
    letters name it. `instance` names this joiner: its transactional id is
    made of it, so a restarted joiner with the same name fences its crashed
    predecessor at once. `commit_interval` (seconds) bounds how long an
    example waits before it is committed (and readable); `clock` (epoch ms,
    default `wall_clock`) is the time windows also close by once the joiner
    has caught up.
    """

    def __init__(
        self,
        log: Log,
        app: App,
        registry: SchemaRegistry | None = None,
        *,
        instance: str = "0",
        commit_interval: float = 0.5,
        max_batch: int = 5_000,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if app.outcomes is None:
            raise AppError(
                f"application {app.name!r} declares no outcomes: add "
                "outcomes=Outcomes(window='1h', positive=['click']) to its App(...) "
                "(from loopline.outcomes import Outcomes)"
            )
        self.log, self.app, self.outcomes, self.registry = log, app, app.outcomes, registry
        self.decisions_topic, self.outcomes_topic = f"{app.name}.decisions", f"{app.name}.outcomes"
        self.labelled, self.late = labelled_topic(app.name), f"{app.name}.outcomes-late"
        self.changelog = f"{app.name}-outcomes-changelog"
        self.group = f"{app.name}-outcomes"
        self.commit_interval, self.max_batch = commit_interval, max_batch
        self.clock = clock or wall_clock
        self.stats = JoinerStats()
        self.partitions = self._ensure_topics()
        self._decoders = {
            self.decisions_topic: self._decoder(self.decisions_topic, Decision),
            self.outcomes_topic: self._decoder(self.outcomes_topic, Outcome),
        }
        self._consumer = log.consumer(
            self.group, [self.decisions_topic, self.outcomes_topic], reset="earliest"
        )
        self._producer = log.producer(transactional_id=f"{self.group}-{instance}")
        self._states: dict[int, JoinState] = {}
        self._dirty: set[int] = set()
        self._in_transaction = False
        self._assigned: set[TopicPartition] = set()
        self._complete: set[int] = set()  # partition numbers owned on both topics
        self._paused: set[TopicPartition] = set()
        name = app.name
        self._metrics = {
            "decisions": metrics.DECISIONS.labels(name),
            "outcomes": metrics.OUTCOMES.labels(name),
            "matched": metrics.MATCHED.labels(name),
            "late": metrics.LATE.labels(name),
            "late_decisions": metrics.LATE_DECISIONS.labels(name),
            "duplicates": metrics.DUPLICATES.labels(name),
            "dead_letters": metrics.DEAD_LETTERS.labels(name),
            "positive": metrics.EXAMPLES.labels(name, "positive"),
            "negative": metrics.EXAMPLES.labels(name, "negative"),
            "dropped": metrics.EXAMPLES.labels(name, "dropped"),
        }
        self._open = metrics.OPEN.labels(name)

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

        Whenever the joiner has read everything, windows that ended before
        the clock (`clock`, default the joiner's) minus the lateness close too.
        """
        stop = stop or threading.Event()
        clock = clock or self.clock
        last_commit = time.monotonic()
        while not stop.is_set():
            records = self._consumer.poll(self.max_batch, timeout=0.2)
            if self._follow_assignment():
                records = []  # the consumer was rewound: these come again
            elif records:
                records = self._owned(records)
            if records:
                self._apply(records)
            caught_up = not records and not self._lag()
            if caught_up:
                self._close_by_clock(clock())
            aborts = self.stats.aborts
            due = time.monotonic() - last_commit >= self.commit_interval
            if self._in_transaction and (due or not records):
                self._commit()
                last_commit = time.monotonic()
                if on_commit is not None:
                    on_commit(self)
            if caught_up and until_caught_up and self.stats.aborts == aborts:
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
        stats, counters = self.stats, self._metrics
        decode_decision = self._decoders[self.decisions_topic][0]
        decode_outcome = self._decoders[self.outcomes_topic][0]
        for record in records:
            state = self._states[record.partition]
            before = (state.joined, state.duplicates, state.late_decisions)
            try:
                if record.topic == self.decisions_topic:
                    decision = msgspec.to_builtins(decode_decision(record.value))
                    stats.decisions += 1
                    counters["decisions"].inc()
                    done = state.decision(decision, record.timestamp)
                else:
                    outcome = decode_outcome(record.value)
                    at = event_time(outcome.at)  # the outcome's own time: any app may write it
                    stats.outcomes += 1
                    counters["outcomes"].inc()
                    value = msgspec.structs.asdict(outcome) | {"at": outcome.at.isoformat()}
                    done = state.outcome(value, at, key=str(record.offset))
            except ContractViolation as exc:
                self._dead_letter(record, str(exc))
                continue
            self._count(state, before)
            self._emit(record.partition, *done)
            self._dirty.add(record.partition)

    def _count(self, state: JoinState, before: tuple[int, int, int]) -> None:
        """Add what `state` counted since `before` (joined, duplicates, late decisions)."""
        for name, was, now in zip(
            ("matched", "duplicates", "late_decisions"),
            before,
            (state.joined, state.duplicates, state.late_decisions),
            strict=True,
        ):
            if now > was:
                setattr(self.stats, name, getattr(self.stats, name) + now - was)
                self._metrics[name].inc(now - was)

    def _close_by_clock(self, now: int) -> None:
        for partition in sorted(self._complete):
            state = self._state(partition)  # also a quiet partition, restored after a restart
            if not state.open and not state.waiting:
                continue
            before = (state.joined, state.duplicates, state.late_decisions)
            examples, late = state.close_until(now)
            self._count(state, before)
            if examples or late or state.joined > before[0]:
                self._begin()
                self._emit(partition, examples, late)
                self._dirty.add(partition)

    def _emit(self, partition: int, examples: list[dict], late: list[Late]) -> None:
        send, stats, counters = self._producer.send, self.stats, self._metrics
        for example in examples:
            positive = example["label"] > 0
            if not positive and not self.outcomes.negatives:
                stats.dropped += 1
                counters["dropped"].inc()
                continue
            send(
                self.labelled,
                msgspec.json.encode(example),
                example["entity"].encode(),
                timestamp=example["at"],
                partition=partition,
            )
            stats.examples += 1
            if positive:
                stats.positives += 1
                counters["positive"].inc()
            else:
                stats.negatives += 1
                counters["negative"].inc()
        for outcome, at, why in late:
            send(
                self.late,
                msgspec.json.encode(outcome),
                str(outcome.get("entity", "")).encode(),
                timestamp=at,
                headers=((LATE_REASON, why.encode()),),
                partition=partition,
            )
            stats.late += 1
            counters["late"].inc()

    def _dead_letter(self, record: Record, reason: str) -> None:
        contract = self._decoders[record.topic][1]
        name, version = contract if contract is not None else (None, None)
        key, value, headers = dead_letter(record, reason, name, version)
        self._producer.send(dlq_topic(record.topic), value, key, headers=headers)
        self.stats.dead_letters += 1
        self._metrics["dead_letters"].inc()

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

    # -- assignment -----------------------------------------------------------------------

    def _follow_assignment(self) -> bool:
        """Keep only whole partitions (both topics); True when the consumer had to rewind.

        A partition number owned on one topic only is paused, and its state
        dropped: joining it needs the other topic's partition too.
        """
        assigned = set(self._consumer.assignment())
        if assigned == self._assigned:
            return False
        self._assigned = assigned
        owned = [
            {tp.partition for tp in assigned if tp.topic == topic}
            for topic in (self.decisions_topic, self.outcomes_topic)
        ]
        self._complete = owned[0] & owned[1]
        half = {tp for tp in assigned if tp.partition not in self._complete}
        if half - self._paused:
            self._consumer.pause(sorted(half - self._paused))
            logger.warning(
                "outcome joiner of %s: owns %s without the same partition of the other topic; "
                "paused them. Run one joiner per application (`loopline outcomes %s`): "
                "partition p of %s is joined with partition p of %s",
                self.app.name,
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(half)),
                self.app.name,
                self.decisions_topic,
                self.outcomes_topic,
            )
        whole = (self._paused & assigned) - half
        if whole:
            self._consumer.resume(sorted(whole))
        self._paused = half
        gone = self._states.keys() - self._complete
        if not gone:
            return False
        rewound = False
        if self._in_transaction:  # changes of partitions this member no longer joins
            self._in_transaction = False
            self._dirty = set()
            self._recover()
            rewound = True
        for partition in gone:
            self._states.pop(partition, None)
        return rewound

    def _owned(self, records: list[Record]) -> list[Record]:
        """The records of whole partitions; the consumer goes back for those of half ones."""
        complete = self._complete
        keep = [r for r in records if r.partition in complete]
        if len(keep) < len(records):
            back: dict[TopicPartition, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                if r.partition not in complete and tp in self._assigned:
                    back[tp] = min(back.get(tp, r.offset), r.offset)
            for tp, offset in back.items():
                self._consumer.seek(tp, offset)
        return keep

    def _lag(self) -> int:
        complete = self._complete
        return sum(n for tp, n in self._consumer.lag().items() if tp.partition in complete)

    # -- restoring and topics -------------------------------------------------------------

    def _restore(self, partition: int) -> JoinState:
        state = JoinState(self.outcomes)
        ends = {p.partition: p.end for p in self.log.describe_topic(self.changelog).partitions}
        if ends.get(partition, 0) > 0:
            wanted = {TopicPartition(self.changelog, partition)}
            for _, record in read_partitions(self.log, self.changelog, wanted, ends):
                value = None if record.value is None else msgspec.json.decode(record.value)
                state.load(record.key.decode(), value)
        state.take_changes()  # restored entries are in the changelog already
        return state

    def _decoder(
        self, topic: str, record_type: type
    ) -> tuple[Callable[[bytes | None], Any], tuple[str, int] | None]:
        """How to read `topic` (its bound contract's codec, else JSON), and the contract."""
        binding = None
        if self.registry is not None and hasattr(self.registry, "binding"):
            binding = self.registry.binding(topic)
        if binding is None:
            codec: Codec = JsonCodec(record_type)
            return codec.decode, None
        version = self.registry.latest(binding.contract)  # type: ignore[union-attr]
        codec = codec_for(record_type, version, binding.encoding, self.registry)  # type: ignore[arg-type]
        return codec.decode, (binding.contract, version.version)

    def _ensure_topics(self) -> int:
        counts: dict[str, int | None] = {}
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
        declared = {
            self.decisions_topic: decisions_topic(self.app.name, partitions=partitions),
            self.outcomes_topic: outcomes_topic(self.app.name, partitions=partitions),
        }
        for topic, n in counts.items():
            if n is not None:
                continue
            if isinstance(self.registry, LogRegistry):
                declared[topic].create(self.log, self.registry)  # and bind its contract
            else:
                with contextlib.suppress(TopicExists):
                    self.log.create_topic(topic, TopicConfig(partitions=partitions))
        for topic, compact in ((self.labelled, False), (self.late, False), (self.changelog, True)):
            with contextlib.suppress(TopicExists):
                self.log.create_topic(topic, TopicConfig(partitions=partitions, compact=compact))
        for topic in (self.decisions_topic, self.outcomes_topic):
            with contextlib.suppress(TopicExists):
                self.log.create_topic(dlq_topic(topic))
        return partitions
