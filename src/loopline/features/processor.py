"""The online feature processor: sources in, per-entity state out, exactly once.

`FeatureProcessor` consumes every source topic of an application's features
in one consumer group, keeps one `OnlineFeatures` per source partition (a
*unit*, see `loopline.features.changelog`), and commits, in one transaction,
the changelog entries of everything that changed together with the input
offsets (it is a task on the stream runtime, `loopline.stream`). After a crash (``kill -9`` included) a restarted processor reads
each unit's changelog back and resumes at the committed offsets, so its state
equals a clean recomputation. On Kafka, several processors in the group split
the partitions and take over those of a member that leaves or dies.

Records that cannot be read (no entity id, an unreadable time, a broken
contract) go to the source's dead-letter topic; records that arrive later
than the declared lateness go to the application's late topic. Both are
written in the same transaction, so every record is accounted for once.

>>> import tempfile
>>> from loopline.app import App
>>> from loopline.features import Aggregations, Entity, FeatureSet
>>> from loopline.features.aggregations import Count
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("clicks")
>>> app = App("shop", features=FeatureSet(
...     [Aggregations("clicks", Entity("member", "member_id"), Count.per_window("clicks", windows=["1h"]))]))
>>> producer = log.producer()
>>> for member in ["m1", "m1", "m2"]:
...     producer.send("clicks", b'{"member_id": "%s"}' % member.encode())
>>> producer.flush()
3
>>> processor = FeatureProcessor(log, app)
>>> processor.run_until_caught_up().records
3
>>> processor.close(); log.close()
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

from loopline.app import App, AppError
from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.features import metrics
from loopline.features.changelog import (
    META,
    ChangelogNames,
    decode,
    encode,
    ensure_changelogs,
    entry_key,
    meta_value,
)
from loopline.features.changelog import parse_key as parse_entry_key
from loopline.features.online import OnlineFeatures, UnreadableRecord
from loopline.features.sources import SourceReader
from loopline.log import Log, Record, TopicExists, TopicPartition
from loopline.log.errors import LogError
from loopline.stream.runner import Runner
from loopline.stream.stage import Stage
from loopline.stream.state import PartitionedState, StateCodec
from loopline.stream.task import Context, TaskStats

PRUNE_INTERVAL = 60.0  # seconds between two prunings of every entity's state
LATE_REASON = "loopline.late.reason"
LATE_TOPIC = "loopline.late.topic"
LATE_PARTITION = "loopline.late.partition"
LATE_OFFSET = "loopline.late.offset"


@dataclass
class ProcessorStats(TaskStats):
    """What a processor did since it started."""

    late: int = 0
    restored_units: int = 0


class _Units(StateCodec[TopicPartition, OnlineFeatures]):
    """A unit (source partition) of online features in its changelog: entries, then meta."""

    def __init__(self, processor: FeatureProcessor) -> None:
        self.processor = processor

    def new(self, unit: TopicPartition) -> OnlineFeatures:
        return OnlineFeatures(self.processor.features)

    def load(self, state: OnlineFeatures, key: bytes, value: bytes | None) -> None:
        entry = parse_entry_key(key)
        if entry is None:
            state.load_meta(decode(value))
        else:
            state.load_entry(*entry, None if value is None else decode(value))

    def settle(self, state: OnlineFeatures) -> None:
        state.take_changes()  # restored state is already in the changelog

    def dump(
        self, unit: TopicPartition, state: OnlineFeatures
    ) -> Iterable[tuple[bytes, bytes | None]]:
        for kind, index, entity in state.take_changes():
            data = state.dump_entry(kind, index, entity)
            yield entry_key(kind, index, entity), None if data is None else encode(data)
        processor = self.processor
        # the source offset this state reflects: an online store tells from it whether the
        # features have caught up with the sources (readiness)
        offset = processor.runner.consumer.position(unit)
        yield META, meta_value(state.dump_meta(), processor.first_append.get(unit), offset)


class FeatureProcessor(Stage[ProcessorStats]):
    """Computes an application's online features from its sources; see the module docstring.

    `instance` names this processor within the group: its transactional id
    is made of it, so a restarted instance fences its crashed predecessor at
    once. Give each concurrent processor of an application its own instance
    name. `commit_interval` (seconds) bounds how long a change waits before it
    is committed, and so readable by an online store.
    """

    name = "features"

    def __init__(
        self,
        log: Log,
        app: App,
        *,
        registry: SchemaRegistry | None = None,
        instance: str = "0",
        commit_interval: float = 0.5,
        max_batch: int = 5_000,
    ) -> None:
        features = app.features
        self.log, self.app, self.features = log, app, features
        self.sources = features.sources
        if not self.sources:
            raise AppError(f"application {app.name!r} declares no aggregations or tables")
        self.topics = self.sources
        self.names = ChangelogNames(app.name, features.fingerprint())
        self.stats = ProcessorStats()
        self._reader = SourceReader(registry)
        self._lateness = {
            g.source: max(int(x.lateness) for x in features.aggregations if x.source == g.source)
            for g in features.aggregations
        }
        self._ensure_topics()
        self.units = PartitionedState(
            log,
            _Units(self),
            lambda tp: TopicPartition(self.names.changelog(tp.topic), tp.partition),
        )
        self.first_append: dict[TopicPartition, int] = {}  # unit -> oldest append in this commit
        self._next_prune = time.monotonic() + PRUNE_INTERVAL
        self._labels = {s: (app.name, s) for s in self.sources}
        self.runner = Runner(
            log,
            self,
            group=self.names.group,
            instance=instance,
            commit_interval=commit_interval,
            max_batch=max_batch,
        )

    # -- the hot loop ---------------------------------------------------------------------

    def process(self, records: list[Record], context: Context) -> None:
        units = self.units
        units.restore({TopicPartition(r.topic, r.partition) for r in records})
        self.stats.restored_units = units.restored
        reader = self._reader
        first_append = self.first_append
        changed = units.changed
        late_counts: dict[str, int] = {}
        unit = None
        last = None
        for record in records:
            topic, partition = record.topic, record.partition
            if (topic, partition) != last:
                last = (topic, partition)
                tp = TopicPartition(topic, partition)
                unit = units.get(tp)
                changed(tp)
                if tp not in first_append:
                    first_append[tp] = record.timestamp
            if record.timestamp < first_append[tp]:
                first_append[tp] = record.timestamp
            key = record.key
            try:
                fields = reader.decoder(topic)(record.value)
                late = unit.process(
                    topic,
                    partition,
                    record.offset,
                    record.timestamp,
                    None if key is None else key.decode("utf-8", "replace"),
                    fields,
                )
            except (ContractViolation, UnreadableRecord) as exc:
                context.dead_letter(record, str(exc))
                continue
            if late:
                self._send_late(record, context)
                late_counts[topic] = late_counts.get(topic, 0) + 1
        for topic, late in late_counts.items():
            metrics.LATE_RECORDS.labels(*self._labels[topic]).inc(late)
            self.stats.late += late

    def _send_late(self, record: Record, context: Context) -> None:
        lateness = self._lateness.get(record.topic, 0)
        headers = (
            *record.headers,
            (LATE_REASON, f"more than {lateness} ms behind its partition's watermark".encode()),
            (LATE_TOPIC, record.topic.encode()),
            (LATE_PARTITION, str(record.partition).encode()),
            (LATE_OFFSET, str(record.offset).encode()),
        )
        context.send(
            self.names.late, record.value, record.key, timestamp=record.timestamp, headers=headers
        )

    # -- committing -----------------------------------------------------------------------

    def checkpoint(self, context: Context) -> None:
        now = time.time_ns() // 1_000_000
        if time.monotonic() >= self._next_prune:  # drop entities no window still sees
            self._next_prune = time.monotonic() + PRUNE_INTERVAL
            for tp, unit in self.units.items():
                if unit.clock is not None:
                    unit.prune(unit.clock)
                    self.units.changed(tp)
                    self.first_append.setdefault(tp, now)
        self._oldest = min(self.first_append.values(), default=None)
        self.units.write(
            lambda topic, value, key, partition: context.send(
                topic, value, key, partition=partition
            )
        )

    def committed(self) -> None:
        self.first_append = {}
        now = time.time_ns() // 1_000_000
        if self._oldest is not None:
            metrics.FRESHNESS.labels(self.app.name).observe(max(0, now - self._oldest) / 1000)
        for entity in {g.entity.name for g in self.features.aggregations}:
            total = sum(unit.entities(entity) for unit in self.units.values())
            metrics.ENTITIES.labels(self.app.name, entity).set(total)

    def revoke(self, partitions: set[TopicPartition]) -> None:
        self.units.drop(partitions)
        for tp in partitions:
            self.first_append.pop(tp, None)

    def reset(self) -> None:
        self.units.clear()
        self.first_append = {}

    def _ensure_topics(self) -> None:
        try:
            ensure_changelogs(self.log, self.names, self.sources)
        except LogError as exc:
            raise AppError(f"application {self.app.name!r}: {exc}") from None
        with contextlib.suppress(TopicExists):
            self.log.create_topic(self.names.late)
