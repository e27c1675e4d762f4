"""Reading partitions of a topic over fixed offset ranges.

The shared reader behind every "read this topic up to here" in loopline:

- `read_partitions`: every record of some partitions before given end
  offsets (restoring a task's state from its changelog);
- `pin` and `read_ranges`: the ranges ``[start, end)`` of a topic pinned now,
  read exactly, later, with a count and a digest per partition so that
  another read can prove it read the very same records; records are handed in
  chunks to a decode hook (datasets decode feature sources, training parses
  labelled examples). `check_held` says whether the log still holds them.

Both stop on the consumer's position, never on a count of records: a
compacted topic, an aborted transaction and a transaction's commit marker all
leave offsets without a record.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("clicks")
>>> producer = log.producer()
>>> for i in range(3):
...     producer.send("clicks", b"%d" % i)
>>> producer.flush()
3
>>> [r.value for _, r in read_partitions(log, "clicks", {TopicPartition("clicks", 0)}, {0: 2})]
[b'0', b'1']
>>> ranges = pin(log, "clicks")
>>> producer.send("clicks", b"3"); producer.flush()  # after the pin: not read
1
>>> def parse(partition, records):  # the decode hook: (what it made, how many it refused)
...     values = [int(r.value) for r in records if r.value != b"1"]
...     return values, len(records) - len(values)
>>> read = read_ranges(log, ranges, parse)
>>> read.chunks
[[0, 2]]
>>> p = read.ranges.partitions[0]
>>> (p.start, p.end, p.records, p.undecodable, len(p.sha256))
(0, 3, 3, 1, 64)
>>> log.close()
"""

from __future__ import annotations

import hashlib
import operator
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
import numpy as np

from loopline.log import Log, LogError, Record, TopicInfo, TopicNotFound, TopicPartition

__all__ = [
    "PartitionRange",
    "RangeError",
    "RangeRead",
    "TopicRange",
    "check_held",
    "pin",
    "read_partitions",
    "read_ranges",
]

T = TypeVar("T")


def read_partitions(
    log: Log, topic: str, partitions: set[TopicPartition], ends: dict[int, int]
) -> list[tuple[TopicPartition, Record]]:
    """Every committed record of `partitions` of `topic` before the `ends` offsets (by partition)."""
    consumer = log.consumer(None, [topic], reset="earliest")
    out: list[tuple[TopicPartition, Record]] = []
    try:
        others = [tp for tp in consumer.assignment() if tp not in partitions]
        if others:
            consumer.pause(others)
        consumer.seek_to_beginning(list(partitions))
        left = {tp for tp in partitions if consumer.position(tp) < ends[tp.partition]}
        deadline = time.monotonic() + 120
        while left:
            for record in consumer.poll(10_000, timeout=0.5):
                if record.offset < ends[record.partition]:
                    out.append((TopicPartition(record.topic, record.partition), record))
            left = {tp for tp in left if consumer.position(tp) < ends[tp.partition]}
            if left and time.monotonic() > deadline:
                raise LogError(
                    f"could not read {topic} to its end in 120 s (an open transaction of a "
                    "crashed writer?): try again once the transaction times out"
                )
    finally:
        consumer.close()
    return out


# -- pinned ranges ----------------------------------------------------------------------


class RangeError(LogError):
    """Pinned ranges that cannot be read (gone from the log, or the read stalls)."""


class PartitionRange(msgspec.Struct, frozen=True):
    """Offsets ``[start, end)`` of one partition, and what was found there.

    `records` counts every record read in the range (a compacted topic or a
    transaction's markers may leave fewer than ``end - start``);
    `undecodable` those the decode hook refused; `sha256` digests the records
    read (offsets, timestamps, keys and values), so a later read can prove it
    read the same ones, however the consumer batched them.
    """

    partition: int
    start: int
    end: int
    records: int = 0
    undecodable: int = 0
    sha256: str = ""


class TopicRange(msgspec.Struct, frozen=True):
    """The pinned ranges of every partition of one topic."""

    topic: str
    partitions: list[PartitionRange]

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def undecodable(self) -> int:
        return sum(p.undecodable for p in self.partitions)


def pin(log: Log, topic: str) -> TopicRange:
    """The range of every partition of `topic` to read now: first offset held to committed end.

    On Kafka the end is the last stable offset, so a transaction still open
    is left out rather than waited for; everything before it is decided.
    """
    info = _describe(log, topic)
    consumer = log.consumer(None, [topic], reset="earliest", read_committed=True)
    try:
        for p in info.partitions:
            consumer.seek(TopicPartition(topic, p.partition), p.start)
        committed = consumer.lag()  # end of what is committed, minus the position (start)
    finally:
        consumer.close()
    ranges = []
    for p in info.partitions:
        lag = committed.get(TopicPartition(topic, p.partition), 0)
        ranges.append(PartitionRange(p.partition, p.start, min(p.end, p.start + lag)))
    return TopicRange(topic, ranges)


def check_held(log: Log, ranges: TopicRange, *, while_reading: bool = False) -> None:
    """Raise `RangeError` unless the log still holds every offset of `ranges`."""
    info = _describe(log, ranges.topic)
    held = {p.partition: p for p in info.partitions}
    for p in ranges.partitions:
        now = held.get(p.partition)
        if now is None:
            raise RangeError(
                f"topic {ranges.topic!r} has no partition {p.partition} any more (it has "
                f"{len(held)}): it was deleted and created again, so the records read then "
                "are gone"
            )
        if p.start < p.end and now.start > p.start:
            when = "while they were read" if while_reading else "since they were pinned"
            raise RangeError(
                f"topic {ranges.topic!r} partition {p.partition} now starts at offset "
                f"{now.start}, but the range starts at offset {p.start}: retention deleted "
                f"records {when} (keep the records of a topic whose ranges are read again "
                "for as long as they must be)"
            )
        if now.end < p.end:
            raise RangeError(
                f"topic {ranges.topic!r} partition {p.partition} ends at offset {now.end}, "
                f"before the range's end {p.end}: the topic was deleted and created again, so "
                "the records pinned then are gone"
            )


def _describe(log: Log, topic: str) -> TopicInfo:
    try:
        return log.describe_topic(topic)
    except TopicNotFound:
        raise RangeError(
            f"topic {topic!r} does not exist on {log.url}: create it (loopline topics create) "
            "or check --log"
        ) from None


Parse = Callable[[int, list[Record]], tuple[T, int]]
"""The decode hook: (partition, records in offset order) -> (what it made of them, how many
of them it refused)."""


@dataclass
class RangeRead(Generic[T]):
    """What `read_ranges` read: the hook's results in (partition, offset) order, and the
    ranges with their counts and digests."""

    chunks: list[T]
    ranges: TopicRange


CHUNK_RECORDS = 32_768  # records per call of the hook: enough to amortise a call


def read_ranges(
    log: Log,
    ranges: TopicRange,
    parse: Parse[T],
    *,
    progress: Callable[[int, int], None] | None = None,
    stall_timeout: float = 60.0,
    chunk_records: int = CHUNK_RECORDS,
) -> RangeRead[T]:
    """Every committed record of exactly `ranges`, handed to `parse` in chunks.

    The reading thread only files records; digesting and `parse` run in one
    other thread, chunk after chunk in offset order, while the next records
    are fetched. A chunk holds records of one partition in offset order, each
    once, all within the range (tombstones included). `progress` is called
    with (offsets read, offsets to read) after every poll. Raises `RangeError`
    when the log no longer holds a range or reading makes no progress for
    `stall_timeout` seconds; whatever `parse` raises, as it raised it.
    """
    topic = ranges.topic
    check_held(log, ranges)
    wanted = {TopicPartition(topic, p.partition): p for p in ranges.partitions}
    total = sum(p.end - p.start for p in ranges.partitions)
    with ThreadPoolExecutor(1, thread_name_prefix="loopline-ranges") as pool:
        parts = {
            tp.partition: _Partition(p, pool, parse, chunk_records) for tp, p in wanted.items()
        }
        consumer = log.consumer(None, [topic], reset="earliest", read_committed=True)
        try:
            others = [tp for tp in consumer.assignment() if tp not in wanted]
            if others:
                consumer.pause(others)
            for tp, p in wanted.items():
                consumer.seek(tp, p.start)
            done = {tp for tp, p in wanted.items() if p.start >= p.end}
            if done:
                consumer.pause(list(done))
            last_read, since = -1, time.monotonic()
            while len(done) < len(wanted):
                records = consumer.poll(max_records=10_000, timeout=0.5)
                if records:
                    for partition, batch in _by_partition(records):
                        if partition in parts:
                            parts[partition].add(batch)
                read = 0
                for tp, p in wanted.items():
                    position = p.end if tp in done else min(consumer.position(tp), p.end)
                    read += position - p.start
                    if tp not in done and position >= p.end:
                        done.add(tp)
                        consumer.pause([tp])
                if progress is not None:
                    progress(read, total)
                if read != last_read:
                    last_read, since = read, time.monotonic()
                elif time.monotonic() - since > stall_timeout:
                    behind = [
                        f"partition {tp.partition} at offset {consumer.position(tp)} of {p.end}"
                        for tp, p in wanted.items()
                        if tp not in done
                    ]
                    raise RangeError(
                        f"reading topic {topic!r} made no progress for {stall_timeout:.0f}s "
                        f"({'; '.join(behind)}): check that the log is reachable and try again"
                    )
        finally:
            consumer.close()
        for part in parts.values():
            part.flush()
        chunks: list[T] = []
        out = []
        for partition in sorted(parts):
            undecodable = 0
            for future in parts[partition].chunks:
                made, refused = future.result()
                chunks.append(made)
                undecodable += refused
            out.append(parts[partition].range(undecodable))
    check_held(log, ranges, while_reading=True)
    return RangeRead(chunks, TopicRange(topic, out))


_PARTITION, _OFFSET, _TIME, _KEY, _VALUE = (operator.itemgetter(i) for i in range(1, 6))


class _Partition(Generic[T]):
    """One partition's records as they are read: counts, digests, and chunks being parsed."""

    def __init__(
        self, pinned: PartitionRange, pool: ThreadPoolExecutor, parse: Parse[T], size: int
    ) -> None:
        self.pinned = pinned
        self.pool = pool
        self.parse = parse
        self.size = size
        self.last = pinned.start - 1
        self.read = 0
        # Three streams, each the concatenation of per-record pieces in offset order, so the
        # digest does not depend on how the consumer batched the records.
        self.meta, self.keys, self.values = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
        self.pending: list[Record] = []
        self.chunks: list[Future[tuple[T, int]]] = []

    def add(self, records: list[Record]) -> None:
        """File records polled together (of this partition, in the order polled)."""
        offsets = list(map(_OFFSET, records))
        if not (
            self.last < offsets[0]
            and offsets[-1] < self.pinned.end
            and all(map(operator.lt, offsets, offsets[1:]))
        ):
            kept = []  # out of the range, or delivered again: pick them one by one
            for record in records:
                if self.last < record.offset < self.pinned.end:
                    kept.append(record)
                    self.last = record.offset
            if not kept:
                return
            records = kept
        self.last = records[-1].offset
        self.read += len(records)
        self.pending += records
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.chunks.append(self.pool.submit(self._chunk, self.pending))
        self.pending = []

    def _chunk(self, records: list[Record]) -> tuple[T, int]:
        keys = list(map(_KEY, records))
        values = list(map(_VALUE, records))
        key_sizes = list(map(len, keys)) if None not in keys else [_size(k) for k in keys]
        tombstones = None in values
        value_sizes = [_size(v) for v in values] if tombstones else list(map(len, values))
        meta = [list(map(_OFFSET, records)), list(map(_TIME, records)), key_sizes, value_sizes]
        self.meta.update(np.array(meta, ">i8").T.tobytes())
        self.keys.update(b"".join(k for k in keys if k) if None in keys else b"".join(keys))
        self.values.update(b"".join(v for v in values if v) if tombstones else b"".join(values))
        return self.parse(self.pinned.partition, records)

    def range(self, undecodable: int) -> PartitionRange:
        digest = hashlib.sha256(self.meta.digest() + self.keys.digest() + self.values.digest())
        return PartitionRange(
            self.pinned.partition,
            self.pinned.start,
            self.pinned.end,
            records=self.read,
            undecodable=undecodable,
            sha256=digest.hexdigest(),
        )


def _size(data: bytes | None) -> int:
    return -1 if data is None else len(data)


def _by_partition(records: list[Record]) -> Iterable[tuple[int, list[Record]]]:
    """`records` grouped by partition, in order (a batch is often of one partition)."""
    partitions = list(map(_PARTITION, records))
    if partitions.count(partitions[0]) == len(partitions):
        return [(partitions[0], records)]
    groups: dict[int, list[Record]] = {}
    for partition, record in zip(partitions, records, strict=True):
        groups.setdefault(partition, []).append(record)
    return groups.items()
