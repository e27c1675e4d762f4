"""The runner: one home for the exactly-once consume -> process -> produce loop.

A `Runner` runs one `Task` (``loopline.stream.task``) in a consumer group.
It polls, hands the task batches of records of the partitions this member
owns, and commits, in one transaction, everything the task sent (outputs,
dead letters, its state changes) together with the input offsets. After a
failed commit or a fenced producer it aborts, tells the task to drop its
state, and rewinds to the committed offsets, so a restarted or recovering
stage ends exactly where a clean recomputation would. When the group moves
partitions to another member, records of partitions this member lost are
never applied here (the other member writes their state now).

Co-partitioned tasks (a join of partition p of several topics) are given
only partition numbers this member owns on every input topic; the others
are paused until it does.

With ``transactional=False`` the runner neither begins transactions nor
commits offsets: the task checkpoints by itself through `Context.commit`
(the online trainer, whose checkpoint is a published model version), and
dead letters are flushed before each such commit.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.stream.task import Task
>>> class Upper(Task):
...     name, topics = "upper", ("words",)
...     def process(self, records, context):
...         for r in records:
...             if not r.value:
...                 context.dead_letter(r, "an empty word")
...             else:
...                 context.send("loud", r.value.upper(), r.key)
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> for topic in ("words", "loud"):
...     log.create_topic(topic)
>>> producer = log.producer()
>>> for word in (b"hi", b"", b"there"):
...     producer.send("words", word)
>>> producer.flush()
3
>>> runner = Runner(log, Upper(), group="upper")
>>> stats = runner.run(until_caught_up=True)
>>> stats.records, stats.dead_letters, stats.commits
(3, 1, 1)
>>> runner.close(); log.close()
"""

from __future__ import annotations

import contextlib
import logging
import operator
import threading
import time
from collections.abc import Callable, Mapping

from loopline.log import (
    Headers,
    Log,
    LogError,
    Record,
    TopicExists,
    TopicPartition,
)
from loopline.log.collector import collector_paused
from loopline.stream.deadletters import dead_letter, dlq_topic
from loopline.stream.sensor import PrometheusSensor, Sensor, Sensors, StatsSensor
from loopline.stream.task import Task, TaskStats

__all__ = ["Runner"]

logger = logging.getLogger(__name__)
_TOPIC_PARTITION = operator.itemgetter(0, 1)  # of a Record: equal to its TopicPartition


class Runner:
    """Runs `task` in consumer `group`; see the module docstring.

    `instance` names this member: its transactional id is
    ``<group>-<instance>``, so a restarted member fences its crashed
    predecessor at once; give each concurrent member its own. `commit_interval`
    (seconds) bounds how long an output waits before it is committed (0:
    commit after every batch); `max_batch` is the most records per poll.
    `sensors` are told what happens, besides the task's stats and Prometheus.
    """

    def __init__(
        self,
        log: Log,
        task: Task,
        *,
        group: str,
        instance: str = "0",
        commit_interval: float = 0.5,
        max_batch: int = 5_000,
        transactional: bool = True,
        sensors: tuple[Sensor, ...] = (),
    ) -> None:
        self.log, self.task, self.group = log, task, group
        self.commit_interval, self.max_batch = commit_interval, max_batch
        self.transactional = transactional
        if getattr(task, "stats", None) is None:
            task.stats = TaskStats()
        self.stats = task.stats
        self.sensor = Sensors(StatsSensor(task.stats), PrometheusSensor(task.name, group), *sensors)
        self.consumer = log.consumer(group, list(task.topics), reset="earliest")
        try:
            self.producer = log.producer(
                transactional_id=f"{group}-{instance}" if transactional else None
            )
        except BaseException:
            # (e.g. a transaction coordinator still loading after a broker restart) a member
            # left open would be kept alive by its heartbeats with nothing polling it, and
            # the group's next rebalance would wait for it, up to max.poll.interval.ms
            self.consumer.close()
            raise
        self.context = _Context(self)
        self._in_transaction = False
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._dlq_ready: set[str] = set()
        # Partitions read since the last commit, and each owned partition's position as last
        # committed (or found when assigned): one moving past it with no record read is
        # committed too (`_commit_stepped_over`).
        self._read: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_caught_up: bool = False,
        on_commit: Callable[[], None] | None = None,
    ) -> TaskStats:
        """Run until `stop` is set (or, with `until_caught_up`, the task is caught up).

        Caught up means: this member owns partitions (a member the group has
        given nothing yet, e.g. while a killed member's session runs out, is
        not caught up) and the task says so (by default, no lag is left).
        """
        stop = stop or threading.Event()
        task, consumer = self.task, self.consumer
        last_commit = next_lag = time.monotonic()
        while not stop.is_set():
            records = consumer.poll(self.max_batch, timeout=0.2)
            if self._follow_assignment():
                records = []  # the consumer was rewound: these come again
            elif records:
                records = self._owned(records)
            if records:
                self._begin()
                self._count(records)
                with collector_paused():  # no pass over the state while a batch builds it
                    task.process(records, self.context)
            elif not self._in_transaction:
                self._commit_stepped_over()
            # Lag costs a look-up of every partition's end: only when a poll came back
            # empty (the only time it can be 0) or once a second, for the metric.
            caught_up = False
            if not records or time.monotonic() >= next_lag:
                lag = self.context.lag()
                self.sensor.lag(lag)
                next_lag = time.monotonic() + 1.0
                caught_up = not records and lag == 0
            aborts = self.stats.aborts
            task.tick(self.context, caught_up)
            due = time.monotonic() - last_commit >= self.commit_interval
            if self._in_transaction and (due or not records):
                self._commit()
                last_commit = time.monotonic()
                if on_commit is not None:
                    on_commit()
            if (
                until_caught_up
                and not records
                and self.context.owned  # before: the group has given this member nothing yet
                and self.stats.aborts == aborts
                and task.caught_up(self.context)
            ):
                break
        if self._in_transaction:
            self._commit()
        return self.stats

    def close(self) -> None:
        """Leave the group (an open transaction is aborted) and release resources."""
        if self._in_transaction:
            with contextlib.suppress(LogError):
                self.producer.abort_transaction()
            self._in_transaction = False
        self.consumer.close()
        self.producer.close()

    # -- the transaction ------------------------------------------------------------------

    def _begin(self) -> None:
        if self.transactional and not self._in_transaction:
            self.producer.begin_transaction()
            self._in_transaction = True

    def _count(self, records: list[Record]) -> None:
        counts: dict[str, int] = {}
        for record in records:
            counts[record.topic] = counts.get(record.topic, 0) + 1
        for topic, n in counts.items():
            self.sensor.records(topic, n)

    def _commit(self) -> None:
        started = time.perf_counter()
        try:
            with collector_paused():  # the changelog entries it builds: bounded, like a batch
                self.task.checkpoint(self.context)
            self.producer.send_offsets(self.consumer)
            self.producer.commit_transaction()
        except LogError as exc:
            logger.warning("%s: commit failed (%s); recovering from the log", self.task.name, exc)
            self._in_transaction = False
            self._recover()
            return
        self._in_transaction = False
        owned = self.context.owned
        for tp in self._read:
            if tp in owned:
                self._committed[tp] = self.consumer.position(tp)
        self._read.clear()
        self.sensor.committed(time.perf_counter() - started)
        self.task.committed()

    def _commit_stepped_over(self) -> None:
        """Commit positions that moved past the last commit with no record returned.

        On Kafka a read_committed consumer steps over offsets that hold nothing
        to read: the commit marker that ends each transaction, and the records
        of an aborted one. The step can come in a poll after the last record's,
        when no transaction is open. Without this commit the group would show a
        lag that nothing will ever read.
        """
        if not self.transactional or not self._committed:
            return
        owned = self.context.owned
        for tp, offset in self._committed.items():
            if tp in owned and self.consumer.position(tp) > offset:
                self._read.add(tp)
        if self._read:
            self._begin()
            self._commit()  # the task has nothing to checkpoint: only the offsets move

    def _recover(self) -> None:
        """Drop all state and resume from what the log committed."""
        self.sensor.aborted()
        with contextlib.suppress(LogError):
            self.producer.abort_transaction()
        self._in_transaction = False
        self._read.clear()  # read again from the committed offsets
        self.task.reset()
        committed = self.consumer.committed(self.consumer.assignment())
        for tp, offset in committed.items():
            if offset is None:
                self.consumer.seek_to_beginning([tp])
            else:
                self.consumer.seek(tp, offset)

    # -- assignment -----------------------------------------------------------------------

    def _follow_assignment(self) -> bool:
        """Follow the group's assignment; True when the consumer had to rewind.

        Partitions this member lost are revoked from the task; if the open
        transaction holds changes of them, it is aborted and every owned
        partition rewinds to its committed offset.
        """
        assigned = set(self.consumer.assignment())
        if assigned == self._assigned:
            return False
        before = self.context.owned
        self._assigned = assigned
        half: set[TopicPartition] = set()
        if self.task.co_partitioned:
            numbers = [
                {tp.partition for tp in assigned if tp.topic == topic} for topic in self.task.topics
            ]
            whole = set.intersection(*numbers) if numbers else set()
            half = {tp for tp in assigned if tp.partition not in whole}
            if half - self._paused:
                self.consumer.pause(sorted(half - self._paused))
                logger.warning(
                    "%s: owns %s without the same partition of every other input topic "
                    "(%s); paused them until it does",
                    self.task.name,
                    ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(half)),
                    ", ".join(self.task.topics),
                )
            back = (self._paused & assigned) - half
            if back:
                self.consumer.resume(sorted(back))
            self._paused = half
        self.context.owned = frozenset(assigned - half)
        lost = before - self.context.owned
        for tp in self.context.owned - before:  # where reading starts counts as committed
            with contextlib.suppress(LogError):  # unknown yet: known once a record is read
                self._committed[tp] = self.consumer.position(tp)
        for tp in lost:
            self._committed.pop(tp, None)
            self._read.discard(tp)
        if not lost:
            return False
        rewound = False
        if self._in_transaction:  # changes of partitions another member owns now
            self._recover()
            rewound = True
        self.task.revoke(set(lost))
        return rewound

    def _owned(self, records: list[Record]) -> list[Record]:
        """The records of owned partitions; the consumer goes back for those of paused ones."""
        owned = self.context.owned
        read = set(map(_TOPIC_PARTITION, records))
        if read <= owned:  # a Record starts as its TopicPartition
            self._read.update(TopicPartition(*tp) for tp in read)
            return records
        keep = [r for r in records if TopicPartition(r.topic, r.partition) in owned]
        self._read.update(TopicPartition(r.topic, r.partition) for r in keep)
        if len(keep) < len(records):
            back: dict[TopicPartition, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                if tp not in owned and tp in self._paused:
                    back[tp] = min(back.get(tp, r.offset), r.offset)
            for tp, offset in back.items():
                self.consumer.seek(tp, offset)
        return keep

    # -- what the context does ------------------------------------------------------------

    def _send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        timestamp: int | None,
        headers: Headers,
        partition: int | None,
    ) -> None:
        self._begin()
        self.producer.send(
            topic, value, key, timestamp=timestamp, headers=headers, partition=partition
        )

    def _dead_letter(self, record: Record, reason: str, contract: tuple[str, int] | None) -> None:
        topic = dlq_topic(record.topic)
        if topic not in self._dlq_ready:
            with contextlib.suppress(TopicExists):
                self.log.create_topic(topic)
            self._dlq_ready.add(topic)
        name, version = contract if contract is not None else (None, None)
        key, value, headers = dead_letter(record, reason, name, version)
        self._send(topic, value, key, None, headers, None)
        self.sensor.dead_letter(record.topic)

    def _commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.transactional:
            raise LogError(
                f"{self.task.name}: a transactional runner commits offsets itself; "
                "Context.commit is for a runner made with transactional=False"
            )
        self.producer.flush()  # dead letters are durable before their offsets commit
        self.consumer.commit(dict(offsets))
        self.sensor.committed(0.0)


class _Context:
    """The `Context` a runner gives its task."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.owned: frozenset[TopicPartition] = frozenset()

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        timestamp: int | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> None:
        self._runner._send(topic, value, key, timestamp, headers, partition)

    def dead_letter(
        self, record: Record, reason: str, contract: tuple[str, int] | None = None
    ) -> None:
        self._runner._dead_letter(record, reason, contract)

    def lag(self) -> int:
        owned = self.owned
        return sum(n for tp, n in self._runner.consumer.lag().items() if tp in owned)

    def position(self, partition: TopicPartition) -> int:
        return self._runner.consumer.position(partition)

    def flush(self) -> None:
        self._runner.producer.flush()

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._runner._commit_offsets(offsets)
