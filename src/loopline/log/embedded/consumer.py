"""The embedded consumer: reads batches in offset order, waiting cheaply for new ones.

Positions are kept in memory and committed on request. A poll reads whole
batches from SQLite, decodes them in C-speed passes and keeps the last decoded
batch of each partition, so a small `max_records` does not decode a batch
twice. While there is nothing new it sleeps, waking as soon as SQLite's
``data_version`` says another connection committed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from loopline.log.embedded import batches, groups
from loopline.log.embedded.store import Store, TopicMeta
from loopline.log.errors import LogError
from loopline.log.protocol import Reset
from loopline.log.records import Record, TopicPartition

_FETCH_BATCHES = 16


class EmbeddedConsumer:
    """A consumer of the embedded log (see `loopline.log.protocol.Consumer`)."""

    def __init__(
        self, store: Store, group: str | None, topics: Iterable[str], *, reset: Reset = "latest"
    ) -> None:
        if reset not in ("earliest", "latest"):
            raise LogError(f"reset must be 'earliest' or 'latest', not {reset!r}")
        self._store = store
        self.group = group
        self._reset = reset
        self._metas: dict[str, TopicMeta] = {t: store.topic(t) for t in topics}
        self._assignment = [
            TopicPartition(t, p) for t, m in self._metas.items() for p in range(m.config.partitions)
        ]
        self._member = groups.join(store, group) if group is not None else None
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._touched: set[TopicPartition] = set()  # read from or seeked: what commit() stores
        self._cache: dict[TopicPartition, tuple[int, int, list[Record]]] = {}
        self._next = 0
        self._closed = False
        stored = groups.committed(store, group, self._assignment) if group is not None else {}
        bounds = self._bounds(self._assignment)
        for tp in self._assignment:
            start, end = bounds[tp]
            offset = stored.get(tp)
            if offset is None:
                offset = start if reset == "earliest" else end
            self._positions[tp] = offset

    # -- reading ---------------------------------------------------------------------

    def _bounds(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, int]]:
        """(first offset held, next offset) of each partition."""
        with self._store.lock:
            out = {}
            for tp in partitions:
                row = self._store.db.execute(
                    "SELECT start_offset, next_offset FROM partitions "
                    "WHERE topic_id = ? AND partition = ?",
                    (self._metas[tp.topic].id, tp.partition),
                ).fetchone()
                out[tp] = (row[0], row[1]) if row else (0, 0)
            return out

    def _fetch(self, tp: TopicPartition, position: int, limit: int) -> list[Record]:
        cached = self._cache.get(tp)
        if cached is not None and cached[0] <= position <= cached[1]:
            records = cached[2]
        else:
            meta = self._metas[tp.topic]
            with self._store.lock:
                rows = self._store.db.execute(
                    "SELECT base_offset, last_offset, data FROM batches "
                    "WHERE topic_id = ? AND partition = ? AND last_offset >= ? "
                    "ORDER BY last_offset LIMIT ?",
                    (meta.id, tp.partition, position, _FETCH_BATCHES),
                ).fetchall()
            if not rows:
                return []
            if rows[0][0] > position:
                # The records at `position` are gone (retention) or were compacted away:
                # continue at the next record held, as Kafka does.
                position = rows[0][0]
            records = []
            for base, _last, data in rows:
                records += batches.decode(tp.topic, tp.partition, base, data)
            self._cache[tp] = (records[0].offset, rows[-1][1], records)
        # first index whose offset >= position (offsets are increasing, possibly with gaps)
        lo, hi = 0, len(records)
        while lo < hi:
            mid = (lo + hi) // 2
            if records[mid].offset < position:
                lo = mid + 1
            else:
                hi = mid
        return records[lo : lo + limit]

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        self._check_open()
        deadline = time.monotonic() + timeout
        version = self._store.data_version()
        sleep = 0.001
        while True:
            out = self._poll_once(max_records)
            if out or time.monotonic() >= deadline:
                return out
            while time.monotonic() < deadline:
                time.sleep(min(sleep, max(0.0, deadline - time.monotonic())))
                sleep = min(sleep * 2, 0.05)
                current = self._store.data_version()
                if current != version:
                    version = current
                    break

    def _poll_once(self, max_records: int) -> list[Record]:
        active = [tp for tp in self._assignment if tp not in self._paused]
        if not active:
            return []
        out: list[Record] = []
        n = len(active)
        for i in range(n):
            tp = active[(self._next + i) % n]
            got = self._fetch(tp, self._positions[tp], max_records - len(out))
            if got:
                out += got
                self._positions[tp] = got[-1].offset + 1
                self._touched.add(tp)
                if len(out) >= max_records:
                    self._next = (self._next + i + 1) % n
                    break
        else:
            self._next = (self._next + 1) % n
        return out

    # -- offsets ---------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check_open()
        if self.group is None or self._member is None:
            raise LogError("this consumer has no group, so it has no offsets to commit")
        if offsets is None:
            offsets = {tp: self._positions[tp] for tp in self._touched}
        if offsets:
            groups.commit(self._store, self.group, self._member, offsets)

    def committed(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int | None]:
        partitions = list(partitions) if partitions is not None else list(self._assignment)
        if self.group is None:
            return dict.fromkeys(partitions)
        return groups.committed(self._store, self.group, partitions)

    def assignment(self) -> list[TopicPartition]:
        return list(self._assignment)

    def position(self, partition: TopicPartition) -> int:
        return self._positions[self._assigned(partition)]

    def _assigned(self, partition: TopicPartition) -> TopicPartition:
        partition = TopicPartition(*partition)
        if partition not in self._positions:
            raise LogError(
                f"{partition.topic}[{partition.partition}] is not assigned to this consumer"
            )
        return partition

    def _targets(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        if partitions is None:
            return list(self._assignment)
        return [self._assigned(tp) for tp in partitions]

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise LogError(f"cannot seek to a negative offset ({offset})")
        tp = self._assigned(partition)
        self._positions[tp] = offset
        self._touched.add(tp)

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        targets = self._targets(partitions)
        for tp, (start, _) in self._bounds(targets).items():
            self._positions[tp] = start
        self._touched.update(targets)

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        targets = self._targets(partitions)
        for tp, (_, end) in self._bounds(targets).items():
            self._positions[tp] = end
        self._touched.update(targets)

    def seek_to_time(
        self, timestamp: int, partitions: Iterable[TopicPartition] | None = None
    ) -> None:
        targets = self._targets(partitions)
        ends = self._bounds(targets)
        for tp in targets:
            meta = self._metas[tp.topic]
            with self._store.lock:
                row = self._store.db.execute(
                    "SELECT base_offset, data FROM batches WHERE topic_id = ? AND partition = ? "
                    "AND max_timestamp >= ? ORDER BY last_offset LIMIT 1",
                    (meta.id, tp.partition, timestamp),
                ).fetchone()
            if row is None:
                self._positions[tp] = ends[tp][1]
                continue
            records = batches.decode(tp.topic, tp.partition, row[0], row[1])
            self._positions[tp] = next(r.offset for r in records if r.timestamp >= timestamp)
        self._touched.update(targets)

    def pause(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._paused.update(self._targets(partitions))

    def resume(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._paused.difference_update(self._targets(partitions))

    def lag(self) -> dict[TopicPartition, int]:
        bounds = self._bounds(self._assignment)
        return {
            tp: max(0, bounds[tp][1] - max(self._positions[tp], bounds[tp][0]))
            for tp in self._assignment
        }

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("this consumer is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.group is not None and self._member is not None:
            groups.leave(self._store, self.group, self._member)
