"""The embedded producer: buffer records per partition, append them as batches in one commit.

`send` only appends to in-memory lists; `flush` (or a full buffer) writes every
buffered partition as record batches in one SQLite transaction, so a flush is
all-or-nothing and an acknowledged record is on disk. A transactional producer
holds its records until `commit_transaction`, which writes them together with
the consumer offsets given to `send_offsets`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from itertools import compress, islice

from loopline.log.embedded import batches, cleaner
from loopline.log.embedded.store import Store, TopicMeta
from loopline.log.errors import (
    DeliveryError,
    InvalidRecord,
    LogError,
    TopicNotFound,
    TransactionError,
)
from loopline.log.partitioner import partition_for, partitions_for
from loopline.log.protocol import Consumer
from loopline.log.records import MAX_FUTURE_MS, Headers, TopicPartition, timestamp_problem

MAX_BATCH_RECORDS = 4096
AUTO_FLUSH_RECORDS = 65536


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Buffer:
    """Records queued for one partition, column by column."""

    __slots__ = ("headers", "keys", "timestamps", "values")

    def __init__(self) -> None:
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.timestamps: list[int] = []
        self.headers: list[Headers] | None = None

    def add_headers(self, headers: Headers) -> None:
        if self.headers is None:
            self.headers = [()] * (len(self.values) - 1)
        self.headers.append(headers)


class EmbeddedProducer:
    """A producer of the embedded log (see `loopline.log.protocol.Producer`)."""

    def __init__(self, store: Store, *, transactional_id: str | None = None) -> None:
        self._store = store
        self._topics: dict[str, TopicMeta] = {}
        self._buffers: dict[tuple[str, int], _Buffer] = {}
        self._queued = 0
        self._sticky = int.from_bytes(os.urandom(2), "little")
        self._closed = False
        self.transactional_id = transactional_id
        self._in_transaction = False
        self._txn_offsets: dict[str, dict[TopicPartition, int]] = {}
        self._epoch = self._claim_epoch(transactional_id) if transactional_id else None

    # -- producing -----------------------------------------------------------------

    def _meta(self, topic: str) -> TopicMeta:
        meta = self._topics.get(topic)
        if meta is None:
            meta = self._topics[topic] = self._store.topic(topic)
        return meta

    def _buffer(self, topic: str, partition: int) -> _Buffer:
        buf = self._buffers.get((topic, partition))
        if buf is None:
            buf = self._buffers[(topic, partition)] = _Buffer()
        return buf

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        timestamp: int | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        if self._closed:
            raise LogError("this producer is closed")
        partitions = self._meta(topic).config.partitions
        if partition is None:
            partition = (
                partition_for(key, partitions) if key is not None else self._sticky % partitions
            )
        elif not 0 <= partition < partitions:
            raise LogError(f"topic {topic!r} has partitions 0..{partitions - 1}, not {partition}")
        if timestamp is None:
            timestamp = now_ms()
        elif problem := timestamp_problem(timestamp, now_ms()):
            raise InvalidRecord(f"cannot send to {topic!r}: {problem}")
        buf = self._buffer(topic, partition)
        buf.keys.append(key)
        buf.values.append(value)
        buf.timestamps.append(timestamp)
        if headers or buf.headers is not None:
            buf.add_headers(tuple(headers or ()))
        self._queued += 1
        if self._queued >= AUTO_FLUSH_RECORDS and not self._in_transaction:
            self.flush()

    def send_batch(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        timestamps: Sequence[int] | None = None,
    ) -> None:
        if self._closed:
            raise LogError("this producer is closed")
        partitions = self._meta(topic).config.partitions
        n = len(values)
        now = now_ms()
        if timestamps is None:
            timestamps = [now] * n
        elif min(timestamps, default=1) <= 0 or max(timestamps, default=0) > now + MAX_FUTURE_MS:
            bad = next(t for t in timestamps if timestamp_problem(t, now))
            raise InvalidRecord(f"cannot send to {topic!r}: {timestamp_problem(bad, now)}")
        if keys is None:
            keys = [None] * n
        if partitions == 1 or all(k is None for k in keys):
            self._extend(topic, self._sticky % partitions, keys, values, timestamps)
        else:
            sticky = self._sticky % partitions
            if None in keys:
                chosen = [sticky if k is None else partition_for(k, partitions) for k in keys]
            else:
                chosen = partitions_for(keys, partitions)
            for p in set(chosen):
                mask = list(map(p.__eq__, chosen))
                self._extend(
                    topic,
                    p,
                    list(compress(keys, mask)),
                    list(compress(values, mask)),
                    list(compress(timestamps, mask)),
                )
        self._queued += n
        if self._queued >= AUTO_FLUSH_RECORDS and not self._in_transaction:
            self.flush()

    def _extend(self, topic: str, partition: int, keys, values, timestamps) -> None:
        buf = self._buffer(topic, partition)
        if buf.headers is not None:
            buf.headers.extend([()] * len(values))
        buf.keys.extend(keys)
        buf.values.extend(values)
        buf.timestamps.extend(timestamps)

    def flush(self, timeout: float | None = None) -> int:
        """Append every buffered record durably; return how many were acknowledged."""
        if self._in_transaction:
            return 0  # records of an open transaction are written by commit_transaction
        return self._write({})

    def _write(self, offsets: Mapping[str, Mapping[TopicPartition, int]]) -> int:
        count = self._queued
        if not count and not offsets:
            return 0
        touched: list[tuple[TopicMeta, int]] = []
        try:
            with self._store.write() as db:
                if self._epoch is not None:
                    self._check_epoch(db)
                for (topic, partition), buf in self._buffers.items():
                    meta = self._meta(topic)
                    row = db.execute(
                        "SELECT next_offset FROM partitions WHERE topic_id = ? AND partition = ?",
                        (meta.id, partition),
                    ).fetchone()
                    if row is None:
                        raise TopicNotFound(topic)
                    self._append(db, meta, partition, row[0], buf)
                    touched.append((meta, partition))
                for group, group_offsets in offsets.items():
                    db.executemany(
                        "INSERT OR REPLACE INTO group_offsets (group_name, topic, partition, offset) "
                        "VALUES (?, ?, ?, ?)",
                        [(group, tp.topic, tp.partition, off) for tp, off in group_offsets.items()],
                    )
        except TopicNotFound as exc:
            # Nothing of this flush was written, and nothing of it ever will be: a record
            # reported as not delivered must not turn up later (on close, say).
            self._topics.pop(exc.topic, None)
            self._discard()
            raise DeliveryError(f"{count} records were not delivered: {exc}", failed=count) from exc
        except TransactionError:
            raise
        except Exception as exc:
            self._discard()
            raise DeliveryError(f"{count} records were not delivered: {exc}", failed=count) from exc
        self._buffers.clear()
        self._queued = 0
        self._sticky += 1
        for meta, partition in touched:
            cleaner.maybe_clean(self._store, meta, partition)
        return count

    @staticmethod
    def _append(db, meta: TopicMeta, partition: int, next_offset: int, buf: _Buffer) -> None:
        n = len(buf.values)
        keys, values, stamps, headers = iter(buf.keys), iter(buf.values), iter(buf.timestamps), None
        if buf.headers is not None:
            headers = iter(buf.headers)
        rows = []
        offset = next_offset
        size_total = 0
        for start in range(0, n, MAX_BATCH_RECORDS):
            m = min(MAX_BATCH_RECORDS, n - start)
            ts = list(islice(stamps, m))
            data = batches.encode(
                list(islice(keys, m)),
                list(islice(values, m)),
                ts,
                list(islice(headers, m)) if headers is not None else None,
                None,
            )
            rows.append((meta.id, partition, offset, offset + m - 1, m, max(ts), len(data), data))
            size_total += len(data)
            offset += m
        db.executemany(
            "INSERT INTO batches (topic_id, partition, base_offset, last_offset, count, "
            "max_timestamp, size, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute(
            "UPDATE partitions SET next_offset = ?, dirty = dirty + ? "
            "WHERE topic_id = ? AND partition = ?",
            (offset, n if meta.config.compact else 0, meta.id, partition),
        )

    # -- transactions ----------------------------------------------------------------

    def _claim_epoch(self, transactional_id: str) -> int:
        """Bump the id's epoch: any older producer with the same id is fenced from now on."""
        with self._store.write() as db:
            row = db.execute(
                "SELECT epoch FROM producer_epochs WHERE transactional_id = ?", (transactional_id,)
            ).fetchone()
            epoch = (row[0] + 1) if row else 0
            db.execute(
                "INSERT OR REPLACE INTO producer_epochs (transactional_id, epoch) VALUES (?, ?)",
                (transactional_id, epoch),
            )
        return epoch

    def _check_epoch(self, db) -> None:
        row = db.execute(
            "SELECT epoch FROM producer_epochs WHERE transactional_id = ?", (self.transactional_id,)
        ).fetchone()
        if row is None or row[0] != self._epoch:
            raise TransactionError(
                f"producer with transactional id {self.transactional_id!r} was fenced: a newer "
                "producer with the same id took over; create a new producer"
            )

    def _require_transactional(self) -> None:
        if self.transactional_id is None:
            raise TransactionError(
                "this producer has no transactional id: create it with "
                "log.producer(transactional_id=...) to use transactions"
            )

    def begin_transaction(self) -> None:
        self._require_transactional()
        if self._in_transaction:
            raise TransactionError("a transaction is already open: commit or abort it first")
        self.flush()
        self._in_transaction = True
        self._txn_offsets = {}

    def send_offsets(
        self, consumer: Consumer, offsets: Mapping[TopicPartition, int] | None = None
    ) -> None:
        self._require_transactional()
        if not self._in_transaction:
            raise TransactionError(
                "send_offsets needs an open transaction: call begin_transaction()"
            )
        if consumer.group is None:
            raise TransactionError("send_offsets needs a consumer that belongs to a group")
        if offsets is None:
            offsets = {tp: consumer.position(tp) for tp in consumer.assignment()}
        self._txn_offsets.setdefault(consumer.group, {}).update(offsets)

    def commit_transaction(self) -> None:
        self._require_transactional()
        if not self._in_transaction:
            raise TransactionError("no open transaction to commit: call begin_transaction() first")
        try:
            self._write(self._txn_offsets)
        except DeliveryError as exc:
            self._discard()
            raise TransactionError(f"transaction aborted, nothing of it is visible: {exc}") from exc
        except TransactionError:
            self._discard()
            raise
        self._in_transaction = False
        self._txn_offsets = {}

    def abort_transaction(self) -> None:
        self._require_transactional()
        if not self._in_transaction:
            raise TransactionError("no open transaction to abort")
        self._discard()

    def _discard(self) -> None:
        self._buffers.clear()
        self._queued = 0
        self._in_transaction = False
        self._txn_offsets = {}

    def close(self) -> None:
        if self._closed:
            return
        if self._in_transaction:
            self._discard()
        else:
            self.flush()
        self._closed = True
