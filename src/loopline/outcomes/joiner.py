"""The outcome joiner: decisions + outcomes -> labelled examples, exactly once.

`OutcomeJoiner` reads ``<app>.decisions`` and ``<app>.outcomes`` in the
consumer group ``<app>.outcomes.join``. Both are keyed by entity, so partition p
of one holds the same entities as partition p of the other; each partition
number has a `JoinState`. When a decision's attribution window closes, its
labelled examples go to ``<app>.labelled``; an outcome that joins no decision
goes to ``<app>.outcomes.late`` with the reason; an unreadable record goes to
``<topic>.dlq``. Every state change goes to the compacted changelog
``<app>.outcomes.changelog`` in the same transaction as those records and
the input offsets (it is a co-partitioned task on `loopline.stream`), so after a ``kill -9`` and a restart no labelled example
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

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from loopline.app import App, AppError
from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.contracts.topics import event_time
from loopline.log import Log, Record, TopicPartition
from loopline.outcomes import metrics
from loopline.outcomes.inputs import decoder, ensure_topics
from loopline.outcomes.outcome import Outcome
from loopline.outcomes.state import JoinState, Late
from loopline.serving.decisions import Decision
from loopline.stream import names
from loopline.stream.runner import Runner
from loopline.stream.stage import Stage
from loopline.stream.state import PartitionedState, StateCodec
from loopline.stream.task import Context, TaskStats

__all__ = ["LATE_REASON", "JoinerStats", "OutcomeJoiner", "wall_clock"]

LATE_REASON = "loopline.late.reason"


def wall_clock() -> int:
    """Milliseconds since the epoch, now: the default clock of `OutcomeJoiner`."""
    return time.time_ns() // 1_000_000


@dataclass
class JoinerStats(TaskStats):
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
    late_decisions: int = 0


class _States(StateCodec[int, JoinState]):
    """The join state of one partition number in the changelog: one JSON entry per key."""

    def __init__(self, joiner: OutcomeJoiner) -> None:
        self.joiner = joiner

    def new(self, unit: int) -> JoinState:
        return JoinState(self.joiner.outcomes)

    def load(self, state: JoinState, key: bytes, value: bytes | None) -> None:
        state.load(key.decode(), None if value is None else msgspec.json.decode(value))

    def settle(self, state: JoinState) -> None:
        state.take_changes()  # restored entries are in the changelog already

    def dump(self, unit: int, state: JoinState) -> Iterable[tuple[bytes, bytes | None]]:
        for key, value in state.take_changes():
            yield key.encode(), None if value is None else msgspec.json.encode(value)


class OutcomeJoiner(Stage[JoinerStats]):
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

    name = "outcomes"
    co_partitioned = True

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
        self.decisions_topic, self.outcomes_topic = (
            names.decisions(app.name),
            names.outcomes(app.name),
        )
        self.topics = (self.decisions_topic, self.outcomes_topic)
        self.labelled, self.late = names.labelled(app.name), names.outcomes_late(app.name)
        self.changelog = names.outcomes_changelog(app.name)
        self.group = names.outcomes_group(app.name)
        self.clock = clock or wall_clock
        self.stats = JoinerStats()
        self.partitions = ensure_topics(log, app, registry)
        self._decoders = {
            self.decisions_topic: decoder(registry, self.decisions_topic, Decision),
            self.outcomes_topic: decoder(registry, self.outcomes_topic, Outcome),
        }
        self.states = PartitionedState(
            log, _States(self), lambda n: TopicPartition(self.changelog, n)
        )
        name = app.name
        self._metrics = {
            "decisions": metrics.DECISIONS.labels(name),
            "outcomes": metrics.OUTCOMES.labels(name),
            "matched": metrics.MATCHED.labels(name),
            "late": metrics.LATE.labels(name),
            "late_decisions": metrics.LATE_DECISIONS.labels(name),
            "duplicates": metrics.DUPLICATES.labels(name),
            "positive": metrics.EXAMPLES.labels(name, "positive"),
            "negative": metrics.EXAMPLES.labels(name, "negative"),
            "dropped": metrics.EXAMPLES.labels(name, "dropped"),
        }
        self._open = metrics.OPEN.labels(name)
        self._now = self.clock
        self.runner = Runner(
            log,
            self,
            group=self.group,
            instance=instance,
            commit_interval=commit_interval,
            max_batch=max_batch,
        )

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
        self._now = clock or self.clock
        return super().run(stop, until_caught_up=until_caught_up, on_commit=on_commit)

    def run_until_caught_up(self, clock: Callable[[], int] | None = None) -> JoinerStats:
        """Join everything present now, close the windows the clock has passed, and return."""
        return self.run(until_caught_up=True, clock=clock)

    # -- joining --------------------------------------------------------------------------

    def process(self, records: list[Record], context: Context) -> None:
        states = self.states
        states.restore({r.partition for r in records})
        stats, counters = self.stats, self._metrics
        decode_decision = self._decoders[self.decisions_topic][0]
        decode_outcome = self._decoders[self.outcomes_topic][0]
        for record in records:
            state = states.get(record.partition)
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
                context.dead_letter(record, str(exc), self._decoders[record.topic][1])
                continue
            self._count(state, before)
            self._emit(context, record.partition, *done)
            states.changed(record.partition)

    def tick(self, context: Context, caught_up: bool) -> None:
        """Once everything is read, close the windows the clock has passed."""
        if not caught_up:
            return
        now = self._now()
        for partition in sorted({tp.partition for tp in context.owned}):
            state = self.states.get(partition)  # also a quiet partition, restored after a restart
            if not state.open and not state.waiting:
                continue
            before = (state.joined, state.duplicates, state.late_decisions)
            examples, late = state.close_until(now)
            self._count(state, before)
            if examples or late or state.joined > before[0]:
                self._emit(context, partition, examples, late)
                self.states.changed(partition)

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

    def _emit(
        self, context: Context, partition: int, examples: list[dict], late: list[Late]
    ) -> None:
        send, stats, counters = context.send, self.stats, self._metrics
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

    # -- committing -----------------------------------------------------------------------

    def checkpoint(self, context: Context) -> None:
        self.states.write(
            lambda topic, value, key, partition: context.send(
                topic, value, key, partition=partition
            )
        )

    def committed(self) -> None:
        self._open.set(sum(len(s.open) for s in self.states.values()))

    def revoke(self, partitions: set[TopicPartition]) -> None:
        self.states.drop({tp.partition for tp in partitions})

    def reset(self) -> None:
        self.states.clear()
