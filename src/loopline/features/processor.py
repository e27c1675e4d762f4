"""The online feature processor: sources in, per-entity state out, exactly once.

`FeatureProcessor` consumes every source topic of an application's features
in one consumer group, keeps one `OnlineFeatures` per source partition (a
*unit*, see `loopline.features.changelog`), and commits, in one transaction,
the changelog entries of everything that changed together with the input
offsets. After a crash (``kill -9`` included) a restarted processor reads
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
import logging
import threading
import time
from collections.abc import Callable
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
from loopline.stream.deadletters import dead_letter, dlq_topic
from loopline.stream.ranges import read_partitions

logger = logging.getLogger(__name__)

PRUNE_INTERVAL = 60.0  # seconds between two prunings of every entity's state
LATE_REASON = "loopline.late.reason"
LATE_TOPIC = "loopline.late.topic"
LATE_PARTITION = "loopline.late.partition"
LATE_OFFSET = "loopline.late.offset"


@dataclass
class ProcessorStats:
    """What a processor did since it started."""

    records: int = 0
    late: int = 0
    dead_letters: int = 0
    commits: int = 0
    aborts: int = 0
    restored_units: int = 0


class FeatureProcessor:
    """Computes an application's online features from its sources; see the module docstring.

    `instance` names this processor within the group: its transactional id
    is made of it, so a restarted instance fences its crashed predecessor at
    once. Give each concurrent processor of an application its own instance
    name. `commit_interval` (seconds) bounds how long a change waits before it
    is committed, and so readable by an online store.
    """

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
        self.sources = sorted(
            {g.source for g in features.aggregations} | {t.source for t in features.tables}
        )
        if not self.sources:
            raise AppError(f"application {app.name!r} declares no aggregations or tables")
        self.names = ChangelogNames(app.name, features.fingerprint())
        self.commit_interval = commit_interval
        self.max_batch = max_batch
        self.stats = ProcessorStats()
        self._reader = SourceReader(registry)
        self._lateness = {
            g.source: max(int(x.lateness) for x in features.aggregations if x.source == g.source)
            for g in features.aggregations
        }
        self._ensure_topics()
        self._consumer = log.consumer(self.names.group, self.sources, reset="earliest")
        self._producer = log.producer(transactional_id=f"{self.names.group}-{instance}")
        self._units: dict[TopicPartition, OnlineFeatures] = {}
        self._dirty: dict[TopicPartition, int] = {}  # unit -> oldest append in this transaction
        self._in_transaction = False
        self._next_prune = time.monotonic() + PRUNE_INTERVAL
        self._dlq_ready: set[str] = set()
        self._labels = {s: (app.name, s) for s in self.sources}

    # -- running ------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_caught_up: bool = False,
        on_commit: Callable[[FeatureProcessor], None] | None = None,
    ) -> ProcessorStats:
        """Process records until `stop` is set (or, with `until_caught_up`, no lag is left)."""
        stop = stop or threading.Event()
        last_commit = time.monotonic()
        while not stop.is_set():
            records = self._consumer.poll(self.max_batch, timeout=0.2)
            if self._follow_assignment():
                records = []  # the consumer was rewound: these come again
            elif records:
                # records of partitions another member now owns: never apply them here,
                # or this member would write that partition's changelog and offsets too
                owned = set(self._consumer.assignment())
                records = [r for r in records if TopicPartition(r.topic, r.partition) in owned]
            if records:
                self._apply(records)
            due = time.monotonic() - last_commit >= self.commit_interval
            idle = not records
            if self._in_transaction and (due or idle or len(self._dirty) > 10_000):
                self._commit()
                last_commit = time.monotonic()
                if on_commit is not None:
                    on_commit(self)
            if idle and until_caught_up and not any(self._consumer.lag().values()):
                break
        if self._in_transaction:
            self._commit()
        return self.stats

    def run_until_caught_up(self) -> ProcessorStats:
        """Process every source record present now, commit, and return."""
        return self.run(until_caught_up=True)

    def close(self) -> None:
        """Leave the group (an open transaction is aborted) and release resources."""
        if self._in_transaction:
            with contextlib.suppress(LogError):
                self._producer.abort_transaction()
        self._consumer.close()
        self._producer.close()

    def vector(self, entity_name: str, entity_id: str, at: int | None = None) -> dict:
        """The vector this processor's own state gives (merged over its units; for tests)."""
        from loopline.features.store import merged_view

        view = merged_view(self.features, self._units.items())
        return view.vector(entity_name, entity_id, at=at)

    # -- the hot loop ---------------------------------------------------------------------

    def _apply(self, records: list[Record]) -> None:
        units = self._units
        missing = {TopicPartition(r.topic, r.partition) for r in records} - units.keys()
        if missing:
            self._restore(missing)
        if not self._in_transaction:
            self._producer.begin_transaction()
            self._in_transaction = True
        reader = self._reader
        dirty = self._dirty
        counts: dict[str, list[int]] = {}
        for record in records:
            topic, partition = record.topic, record.partition
            tp = TopicPartition(topic, partition)
            unit = units[tp]
            if tp not in dirty or record.timestamp < dirty[tp]:
                dirty[tp] = record.timestamp
            count = counts.get(topic)
            if count is None:
                count = counts[topic] = [0, 0, 0]
            count[0] += 1
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
                self._dead_letter(record, str(exc))
                count[2] += 1
                continue
            if late:
                self._send_late(record)
                count[1] += 1
        for topic, (n, late, dead) in counts.items():
            labels = self._labels[topic]
            metrics.RECORDS.labels(*labels).inc(n)
            self.stats.records += n
            if late:
                metrics.LATE_RECORDS.labels(*labels).inc(late)
                self.stats.late += late
            if dead:
                metrics.DEAD_LETTERS.labels(*labels).inc(dead)
                self.stats.dead_letters += dead

    def _send_late(self, record: Record) -> None:
        lateness = self._lateness.get(record.topic, 0)
        headers = (
            *record.headers,
            (LATE_REASON, f"more than {lateness} ms behind its partition's watermark".encode()),
            (LATE_TOPIC, record.topic.encode()),
            (LATE_PARTITION, str(record.partition).encode()),
            (LATE_OFFSET, str(record.offset).encode()),
        )
        self._producer.send(
            self.names.late, record.value, record.key, timestamp=record.timestamp, headers=headers
        )

    def _dead_letter(self, record: Record, reason: str) -> None:
        topic = dlq_topic(record.topic)
        if topic not in self._dlq_ready:
            with contextlib.suppress(TopicExists):
                self.log.create_topic(topic)
            self._dlq_ready.add(topic)
        key, value, headers = dead_letter(record, reason, None, None)
        self._producer.send(topic, value, key, headers=headers)

    # -- committing -----------------------------------------------------------------------

    def _commit(self) -> None:
        producer = self._producer
        now = time.time_ns() // 1_000_000
        if time.monotonic() >= self._next_prune:  # drop entities no window still sees
            self._next_prune = time.monotonic() + PRUNE_INTERVAL
            for tp, unit in self._units.items():
                if unit.clock is not None:
                    unit.prune(unit.clock)
                    self._dirty.setdefault(tp, now)
        try:
            oldest = None
            for tp, first_append in self._dirty.items():
                unit = self._units[tp]
                changelog = self.names.changelog(tp.topic)
                for kind, index, entity in unit.take_changes():
                    data = unit.dump_entry(kind, index, entity)
                    producer.send(
                        changelog,
                        None if data is None else encode(data),
                        entry_key(kind, index, entity),
                        partition=tp.partition,
                    )
                producer.send(
                    changelog,
                    meta_value(unit.dump_meta(), first_append),
                    META,
                    partition=tp.partition,
                )
                oldest = first_append if oldest is None else min(oldest, first_append)
            producer.send_offsets(self._consumer)
            producer.commit_transaction()
        except LogError as exc:
            logger.warning("feature processor: commit failed (%s); recovering from the log", exc)
            self._recover()
            return
        finally:
            self._in_transaction = False
            self._dirty = {}
        self.stats.commits += 1
        metrics.COMMITS.labels(self.app.name).inc()
        if oldest is not None:
            metrics.FRESHNESS.labels(self.app.name).observe(max(0, now - oldest) / 1000)
        for entity in {g.entity.name for g in self.features.aggregations}:
            total = sum(unit.entities(entity) for unit in self._units.values())
            metrics.ENTITIES.labels(self.app.name, entity).set(total)

    def _recover(self) -> None:
        """After a failed commit: drop all state and resume from what the log committed."""
        self.stats.aborts += 1
        with contextlib.suppress(LogError):
            self._producer.abort_transaction()
        self._units.clear()
        committed = self._consumer.committed(self._consumer.assignment())
        for tp, offset in committed.items():
            if offset is None:
                self._consumer.seek_to_beginning([tp])
            else:
                self._consumer.seek(tp, offset)

    def _follow_assignment(self) -> bool:
        """Drop the units of partitions this member lost; True when it had to rewind."""
        gone = self._units.keys() - set(self._consumer.assignment())
        if not gone:
            return False
        rewound = False
        if self._in_transaction:  # changes of partitions now owned by another member
            self._in_transaction = False
            self._dirty = {}
            self._recover()
            rewound = True
        for tp in gone:
            self._units.pop(tp, None)
        return rewound

    # -- restoring ------------------------------------------------------------------------

    def _restore(self, partitions: set[TopicPartition]) -> None:
        """Build the units of `partitions` from their changelog partitions."""
        by_source: dict[str, list[int]] = {}
        for tp in partitions:
            by_source.setdefault(tp.topic, []).append(tp.partition)
            self._units[tp] = OnlineFeatures(self.features)
        for source, numbers in by_source.items():
            changelog = self.names.changelog(source)
            ends = {p.partition: p.end for p in self.log.describe_topic(changelog).partitions}
            wanted = {TopicPartition(changelog, n) for n in numbers if ends.get(n, 0) > 0}
            if not wanted:
                continue
            for tp, record in read_partitions(self.log, changelog, wanted, ends):
                unit = self._units[TopicPartition(source, tp.partition)]
                entry = parse_entry_key(record.key)
                if entry is None:
                    unit.load_meta(decode(record.value))
                else:
                    unit.load_entry(*entry, None if record.value is None else decode(record.value))
        for tp in partitions:
            self._units[tp].take_changes()  # restored state is already in the changelog
        self.stats.restored_units += len(partitions)

    def _ensure_topics(self) -> None:
        try:
            ensure_changelogs(self.log, self.names, self.sources)
        except LogError as exc:
            raise AppError(f"application {self.app.name!r}: {exc}") from None
        with contextlib.suppress(TopicExists):
            self.log.create_topic(self.names.late)
