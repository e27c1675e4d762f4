"""The online store: feature vectors for a serving process, read from the changelog.

`FeatureStore` follows the changelog topics the feature processors write
(`loopline.features.changelog`) and keeps every entity's state in memory, so
`get` is a dictionary look-up and a merge of a few tiles: no network hop on
the read path. Values are evaluated at read time (a 1-hour count falls as
the hour passes). Any number of stores, in any number of processes, can
follow one application; each sees a change once the processor's transaction
that made it commits.

An entity whose records sit in several partitions of a source (a source not
keyed by the entity) has one state per partition; the store merges them.

>>> import tempfile
>>> from loopline.app import App
>>> from loopline.features import Aggregations, Entity, FeatureSet
>>> from loopline.features.aggregations import Count
>>> from loopline.features.processor import FeatureProcessor
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
>>> store = FeatureStore(log, app)
>>> store.catch_up()
>>> store.get("member", ["m1", "m2", "m3"])
[{'clicks_1h': 2}, {'clicks_1h': 1}, {'clicks_1h': 0}]
>>> store.known("member", "m2"), store.known("member", "m3")
(True, False)
>>> store.close(); processor.close(); log.close()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from loopline.app import App
from loopline.features import metrics
from loopline.features.changelog import ChangelogNames, decode, ensure_changelogs, parse_key
from loopline.features.declarations import FeatureSet
from loopline.features.online import EntityState, OnlineFeatures, TileReader
from loopline.log import Log, LogError, Record, TopicPartition
from loopline.log.collector import collector_paused

logger = logging.getLogger(__name__)

# A derived feature's raises are warned of as their count reaches each of these.
DERIVED_WARNINGS = (1, 100, 10_000, 1_000_000)


class FeatureStore:
    """Online feature vectors of an application, kept up to date from its changelog.

    A background thread follows the changelog; `catch_up` waits until
    everything committed when it was called is readable.
    """

    def __init__(
        self, log: Log, app: App, *, poll_timeout: float = 0.1, derived_warnings: bool = True
    ) -> None:
        self.log, self.app, self.features = log, app, app.features
        sources = self.features.sources
        self.names = ChangelogNames(app.name, self.features.fingerprint())
        self._topics = ensure_changelogs(log, self.names, sources)
        self._source_of = {self.names.changelog(s): s for s in sources}
        self._view = Merger(self.features)
        self._consumer = log.consumer(None, self._topics, reset="earliest")
        self._positions: dict[TopicPartition, int] = {}
        # per source partition, the next source offset the features read so far reflect
        # (-1: a changelog from before offsets were recorded, assumed caught up)
        self._processed: dict[TopicPartition, int] = {}
        self._poll_timeout = poll_timeout
        self._derived_seen: dict[str, int] = {}  # raises already exported, per derived feature
        # off for a command that reports the raises itself (`loopline features get`)
        self._derived_warnings = derived_warnings
        self._progress = threading.Condition()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="loopline-store", daemon=True)
        self._thread.start()

    # -- reading --------------------------------------------------------------------------

    def get(
        self,
        entity_name: str,
        entity_ids: Sequence[str],
        names: Sequence[str] | None = None,
        *,
        at: int | None = None,
    ) -> list[dict[str, Any]]:
        """The vectors of `entity_ids` (features `names`, default all) at `at` (default: now)."""
        if at is None:
            at = time.time_ns() // 1_000_000
        view = self._view
        vector, ready = view.online.vector, view.ready
        out = []
        # Laying out changed entries builds many small lists, none in a cycle: without the
        # pause, the collector's passes over everything held were most of a first read.
        with collector_paused():
            for entity_id in entity_ids:
                ready(entity_name, entity_id)
                out.append(vector(entity_name, entity_id, names, at))
        return out

    def vector(
        self,
        entity_name: str,
        entity_id: str,
        names: Sequence[str] | None = None,
        *,
        at: int | None = None,
    ) -> dict[str, Any]:
        """The vector of one entity (as `get`)."""
        return self.get(entity_name, [entity_id], names, at=at)[0]

    def vectors(
        self,
        entities: Mapping[str, str | None] | Sequence[Mapping[str, str | None]],
        names: Sequence[str] | None = None,
        *,
        at: int | None = None,
    ) -> list[dict[str, Any]]:
        """The vectors of related entities (as `get`): one per mapping of entity name -> id.

        Each holds the features of every entity given, and the derived features
        whose inputs are all among them (`OnlineFeatures.vector` of a mapping),
        so a member's vector with each candidate item's is one call:

        >>> import tempfile
        >>> from loopline.features import Derived, Entity, Table, TableFeature
        >>> from loopline.features.processor import FeatureProcessor
        >>> from loopline.log import open_log
        >>> log = open_log("embedded:" + tempfile.mkdtemp())
        >>> for topic in ("profiles", "items"):
        ...     log.create_topic(topic)
        >>> member, item = Entity("member", "member_id"), Entity("item", "item_id")
        >>> app = App("shop", features=FeatureSet(tables=[
        ...     Table("profiles", member, [TableFeature("country", "country", default="??")]),
        ...     Table("items", item, [TableFeature("item_country", "country", default="??")]),
        ... ], derived=[Derived("same_country", ("country", "item_country"), lambda a, b: a == b)]))
        >>> producer = log.producer()
        >>> producer.send("profiles", b'{"member_id": "m1", "country": "PT"}')
        >>> producer.send("items", b'{"item_id": "i7", "country": "PT"}')
        >>> producer.flush()
        2
        >>> processor = FeatureProcessor(log, app)
        >>> processor.run_until_caught_up().records
        2
        >>> store = FeatureStore(log, app)
        >>> store.catch_up()
        >>> store.vectors([{"member": "m1", "item": "i7"}, {"member": "m1", "item": "i8"}],
        ...               ["item_country", "same_country"])
        [{'item_country': 'PT', 'same_country': True}, {'item_country': '??', 'same_country': False}]
        >>> store.close(); processor.close(); log.close()
        """
        if at is None:
            at = time.time_ns() // 1_000_000
        if isinstance(entities, Mapping):
            entities = [entities]
        view = self._view
        with collector_paused():  # as in `get`
            for ids in entities:
                for entity_name, entity_id in ids.items():
                    if entity_id is not None:
                        view.ready(entity_name, str(entity_id))
            return view.online.vectors(entities, names, at)

    def derived_failures(self) -> dict[str, tuple[int, str]]:
        """Per derived feature, the reads of this store whose function raised (they took the
        default) and the first error, as ``(count, "ZeroDivisionError: ...")``."""
        online = self._view.online
        return {
            name: (count, online.first_derived_error.get(name, ""))
            for name, count in online.derived_failures.items()
        }

    def known(self, entity_name: str, entity_id: str) -> bool:
        """Whether the online features hold anything of `entity_id` (an event, a table row).

        An entity never seen, or whose every window has passed and every table
        row was deleted, is unknown: its vector would be all defaults.
        """
        return self._view.known(entity_name, str(entity_id))

    def catch_up(self, timeout: float = 60.0) -> None:
        """Wait until every change committed before this call is readable."""
        ends = {
            TopicPartition(topic, p.partition): p.end
            for topic in self._topics
            for p in self.log.describe_topic(topic).partitions
        }
        deadline = time.monotonic() + timeout
        with self._progress:
            while True:
                if self._error is not None:
                    raise LogError(f"the online store stopped following: {self._error}")
                behind = [tp for tp, end in ends.items() if self._positions.get(tp, 0) < end]
                if not behind:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"the online store did not catch up in {timeout:g} s: "
                        f"{len(behind)} changelog partitions are behind"
                    )
                self._progress.wait(min(left, 0.5))

    def unprocessed(self, timeout: float = 10.0) -> dict[str, int]:
        """Per source topic, records the features read so far do not reflect (empty: none).

        Looks at the sources from the offsets the feature processor had
        reached in the changes read so far (call `catch_up` first): a source
        record there means the processor has not run, or not caught up. Until
        it has seen any record, `timeout` seconds or more, it counts the
        records from there to the end.
        """
        processed = dict(self._processed)
        consumer = self.log.consumer(None, sorted(set(self._source_of.values())), reset="earliest")
        try:
            parts = [tp for tp in consumer.assignment() if processed.get(tp) != -1]
            for tp in parts:
                if tp in processed:
                    consumer.seek(tp, processed[tp])
                else:
                    consumer.seek_to_beginning([tp])
            deadline = time.monotonic() + timeout
            while True:
                seen = consumer.poll(len(parts) or 1, timeout=0.2) if parts else []
                lag = {tp: n for tp, n in consumer.lag().items() if tp in parts}
                if not seen and not any(lag.values()):
                    return {}
                if seen or time.monotonic() > deadline:
                    behind: dict[str, int] = {}
                    for tp, n in lag.items():
                        behind[tp.topic] = behind.get(tp.topic, 0) + n
                    for record in seen:
                        behind[record.topic] = behind.get(record.topic, 0) + 1
                    return {topic: n for topic, n in behind.items() if n}
        finally:
            consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self._consumer.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- following ------------------------------------------------------------------------

    def _follow(self) -> None:
        consumer = self._consumer
        try:
            while not self._stop.is_set():
                records = consumer.poll(10_000, timeout=self._poll_timeout)
                now = time.time_ns() // 1_000_000
                for record in records:
                    self._apply(record, now)
                self._report_derived()
                positions = {tp: consumer.position(tp) for tp in consumer.assignment()}
                with self._progress:
                    self._positions = positions
                    self._progress.notify_all()
        except BaseException as exc:  # reported by catch_up; a serving process keeps old values
            logger.exception("online store of %s stopped following its changelog", self.app.name)
            with self._progress:
                self._error = exc
                self._progress.notify_all()

    def _report_derived(self) -> None:
        """Export derived features' raises as a metric, and warn as they pass each threshold:
        a function that raises gives its default silently otherwise."""
        online = self._view.online
        for name, count in list(online.derived_failures.items()):
            seen = self._derived_seen.get(name, 0)
            if count <= seen:
                continue
            metrics.DERIVED_ERRORS.labels(self.app.name, name).inc(count - seen)
            self._derived_seen[name] = count
            if self._derived_warnings and any(seen < mark <= count for mark in DERIVED_WARNINGS):
                logger.warning(
                    "derived feature %r of %s raised on %d reads so far and took its default "
                    "(%s): fix its function",
                    name,
                    self.app.name,
                    count,
                    online.first_derived_error.get(name, ""),
                )

    def _apply(self, record: Record, now: int) -> None:
        entry = parse_key(record.key)
        if entry is None:
            meta = decode(record.value)
            offset = meta.get("offset", -1)
            source = TopicPartition(self._source_of[record.topic], record.partition)
            self._processed[source] = -1 if offset is None else offset
            oldest = meta.get("oldest_append")
            if oldest is not None:
                metrics.STORE_FRESHNESS.labels(self.app.name).observe(max(0, now - oldest) / 1000)
            self._view.clock(meta["clock"])
            return
        kind = entry[0]
        if record.value is None:
            data = None
        else:  # aggregation states are decoded when first read
            data = record.value if kind == "a" else decode(record.value)
        self._view.put(*entry, record.partition, data)


class Merger:
    """Per-partition states and rows of entities, merged into one readable `OnlineFeatures`.

    Aggregation states arrive as changelog bytes and are decoded lazily, on
    the first read of the entity after a change (`ready`): catching up with a
    changelog of millions of entries is then a dictionary store per entry,
    and an entity never read is never decoded.
    """

    def __init__(self, features: FeatureSet) -> None:
        self.online = OnlineFeatures(features)
        self._parts: dict[tuple[str, int, str], dict[int, Any]] = {}
        self._stale: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._groups: dict[str, tuple[int, ...]] = {}
        for i, group in enumerate(features.aggregations):
            self._groups[group.entity.name] = (*self._groups.get(group.entity.name, ()), i)
        self._tables: dict[str, tuple[int, ...]] = {}
        for i, table in enumerate(features.tables):
            self._tables[table.entity.name] = (*self._tables.get(table.entity.name, ()), i)

    def clock(self, clock: int | None) -> None:
        if clock is not None and (self.online.clock is None or clock > self.online.clock):
            self.online.clock = clock

    def put(self, kind: str, index: int, entity: str, partition: int, data: Any | None) -> None:
        """Set the entry of (kind, index, entity) from `partition` (None removes it).

        `data` is what `OnlineFeatures.dump_entry` gave, or for an aggregation
        state also its msgpack bytes (decoded when the entity is next read).
        """
        key = (kind, index, entity)
        with self._lock:
            parts = self._parts.get(key)
            if parts is None:
                if data is None:
                    return
                parts = self._parts[key] = {}
            if data is None:
                parts.pop(partition, None)
            else:
                parts[partition] = data
            if not parts:
                del self._parts[key]
            if kind == "a":
                self._stale.add((index, entity))
                return
            rows = list(parts.values())
            latest = max(rows, key=lambda row: (row[0], row[1])) if rows else None
            self.online.load_entry("t", index, entity, latest)

    def known(self, entity_name: str, entity_id: str) -> bool:
        """Whether any aggregation or table of `entity_name` holds state for `entity_id`."""
        parts = self._parts
        return any(("a", i, entity_id) in parts for i in self._groups.get(entity_name, ())) or any(
            ("t", i, entity_id) in parts for i in self._tables.get(entity_name, ())
        )

    def ready(self, entity_name: str, entity_id: str) -> None:
        """Decode and merge the changed states of one entity before it is read."""
        stale = self._stale
        if not stale:
            return
        if not isinstance(entity_id, str):
            entity_id = str(entity_id)  # as OnlineFeatures keys them
        for index in self._groups.get(entity_name, ()):
            key = (index, entity_id)
            if key in stale:
                with self._lock:
                    if key in stale:
                        stale.discard(key)
                        self._merge(index, entity_id)

    def ready_all(self) -> None:
        """Decode every changed state (for callers that read the states directly)."""
        with self._lock:
            for index, entity in list(self._stale):
                self._merge(index, entity)
            self._stale.clear()

    def _merge(self, index: int, entity: str) -> None:
        plan = self.online.plan(index)
        parts = self._parts.get(("a", index, entity))
        if not parts:
            self.online.put_reader(index, entity, None)
            return
        if len(parts) == 1:  # keyed by the entity: lay the entry out, no state to build
            (data,) = parts.values()
            if not isinstance(data, EntityState):
                data = decode(data) if isinstance(data, bytes) else data
                self.online.put_reader(index, entity, TileReader.from_dump(plan, data))
                return
        for partition, data in parts.items():
            if not isinstance(data, EntityState):
                parts[partition] = EntityState.load(
                    plan, decode(data) if isinstance(data, bytes) else data
                )
        states = list(parts.values())
        merged = states[0] if len(states) == 1 else EntityState.merged(plan, states)
        self.online.put_reader(index, entity, TileReader(merged))
