"""Reading a topic exactly over pinned offset ranges, for datasets that can be built again.

`pin` records, per partition, the first offset the log still holds and the
end of what is committed now; `read_pinned` reads exactly ``[start, end)`` of
every partition, committed records only, and nothing after `end` however
much was appended since. It stops on the consumer's position, not on a count
of records: a compacted topic, an aborted transaction and a transaction's
commit marker all leave offsets without a record.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("clicks")
>>> producer = log.producer()
>>> for value in [b'{"n": 1}', b'[2]', b'{"n": 3}']:
...     producer.send("clicks", value)
>>> producer.flush()
3
>>> ranges = pin(log, "clicks")
>>> producer.send("clicks", b'{"n": 4}'); producer.flush()  # after the pin: not read
1
>>> read = read_pinned(log, "clicks", ranges, SourceReader(None).decoder("clicks"))
>>> [r["value"] for r in read.records]
[{'n': 1}, {'n': 3}]
>>> p = read.ranges.partitions[0]
>>> (p.start, p.end, p.records, p.undecodable)
(0, 3, 3, 1)
>>> log.close()
"""

from __future__ import annotations

import hashlib
import operator
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import msgspec
import numpy as np

from loopline.contracts.codecs import ContractViolation
from loopline.features.offline.events import EventColumns
from loopline.features.offline.manifests import DatasetError, PartitionRange, TopicRange
from loopline.features.sources import Decode, SourceReader
from loopline.features.sources import _decode_json as _decode_json_value
from loopline.features.sources import _json_object as _plain_json
from loopline.log import Log, Record, TopicNotFound, TopicPartition

Progress = Callable[[str, int, int], None]  # (topic, offsets read, offsets to read)

__all__ = ["PinnedRead", "Progress", "SourceReader", "pin", "read_pinned"]


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


BATCH = 50_000  # records asked of the consumer at once


@dataclass
class PinnedRead:
    """What `read_pinned` read: the decoded records as columns (as `events_table_of_columns`
    takes them) and the ranges with their counts and digests."""

    columns: EventColumns
    ranges: TopicRange

    @property
    def records(self) -> list[dict[str, Any]]:
        """The decoded records one by one, as `events_table` takes them."""
        return self.columns.records()


def read_pinned(
    log: Log,
    topic: str,
    ranges: TopicRange,
    decode: Decode,
    *,
    progress: Progress | None = None,
    stall_timeout: float = 60.0,
) -> PinnedRead:
    """Every record of `ranges`, decoded by `decode`, in (partition, offset) order.

    A record `decode` refuses (`ContractViolation`) is counted as undecodable
    and skipped. Raises `DatasetError` when the log no longer holds a range
    (retention deleted its start, or the topic shrank) or when reading stops
    making progress for `stall_timeout` seconds.
    """
    check_held(log, ranges)
    wanted = {TopicPartition(topic, p.partition): p for p in ranges.partitions}
    counts = {tp: _Count() for tp in wanted}
    total = sum(p.end - p.start for p in ranges.partitions)
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
        read, last_read, since = 0, -1, time.monotonic()
        while len(done) < len(wanted):
            batch = consumer.poll(max_records=BATCH, timeout=0.5)
            for tp, records in _by_partition(batch):
                p = wanted.get(tp)
                if p is not None:
                    counts[tp].add_batch(records, p, decode)
            read = 0
            for tp, p in wanted.items():
                position = p.end if tp in done else min(consumer.position(tp), p.end)
                read += position - p.start
                if tp not in done and position >= p.end:
                    done.add(tp)
                    consumer.pause([tp])
            if progress is not None:
                progress(topic, read, total)
            if read != last_read:
                last_read, since = read, time.monotonic()
            elif time.monotonic() - since > stall_timeout:
                behind = [
                    f"partition {tp.partition} at offset {consumer.position(tp)} of {p.end}"
                    for tp, p in wanted.items()
                    if tp not in done
                ]
                raise DatasetError(
                    f"reading topic {topic!r} made no progress for {stall_timeout:.0f}s "
                    f"({'; '.join(behind)}): check that the log is reachable and try again"
                )
    finally:
        consumer.close()
    check_held(log, ranges, while_reading=True)
    return PinnedRead(
        columns=EventColumns.concat([counts[tp].columns for tp in sorted(wanted)]),
        ranges=TopicRange(
            topic, [counts[tp].range(p) for tp, p in sorted(wanted.items(), key=_first)]
        ),
    )


def _by_partition(batch: list[Record]) -> list[tuple[TopicPartition, list[Record]]]:
    """The records of one poll in runs of one partition each, in the order polled."""
    if not batch:
        return []
    topics = set(map(itemgetter(0), batch))
    if len(topics) > 1:  # not asked for: read one by one
        return [(TopicPartition(r.topic, r.partition), [r]) for r in batch]
    topic = next(iter(topics))
    partitions = np.fromiter(map(itemgetter(1), batch), np.int64, len(batch))
    starts = [0, *(np.flatnonzero(partitions[1:] != partitions[:-1]) + 1).tolist()]
    ends = [*starts[1:], len(batch)]
    return [
        (TopicPartition(topic, int(partitions[i])), batch[i:j])
        for i, j in zip(starts, ends, strict=True)
    ]


def _first(item: tuple[TopicPartition, PartitionRange]) -> TopicPartition:
    return item[0]


def check_held(log: Log, ranges: TopicRange, *, while_reading: bool = False) -> None:
    """Raise `DatasetError` unless the log still holds every offset of `ranges`."""
    info = _describe(log, ranges.topic)
    held = {p.partition: p for p in info.partitions}
    for p in ranges.partitions:
        now = held.get(p.partition)
        if now is None:
            raise DatasetError(
                f"topic {ranges.topic!r} has no partition {p.partition} any more (it has "
                f"{len(held)}): it was deleted and created again, so the records read then "
                "are gone; build a new dataset instead"
            )
        if p.start < p.end and now.start > p.start:
            when = "while they were read" if while_reading else "since the dataset was built"
            raise DatasetError(
                f"topic {ranges.topic!r} partition {p.partition} now starts at offset "
                f"{now.start}, but the dataset reads from offset {p.start}: retention deleted "
                f"records {when}. Build a new dataset, and keep the records of topics that "
                "datasets read for as long as those datasets must be rebuilt (retention)"
            )
        if now.end < p.end:
            raise DatasetError(
                f"topic {ranges.topic!r} partition {p.partition} ends at offset {now.end}, "
                f"before the dataset's end {p.end}: the topic was deleted and created again; "
                "build a new dataset instead"
            )


def _describe(log: Log, topic: str) -> Any:
    try:
        return log.describe_topic(topic)
    except TopicNotFound:
        raise DatasetError(
            f"topic {topic!r} does not exist on {log.url}: create it (loopline topics create) "
            "or check --log"
        ) from None


_HEAD = struct.Struct(">qqq").pack  # offset, timestamp, key size
_SIZE = struct.Struct(">q").pack  # value size


class _Count:
    """The records of one partition read so far, as columns, their count and digest."""

    def __init__(self) -> None:
        self.columns = EventColumns.empty()
        self.read = 0
        self.undecodable = 0
        self.digest = hashlib.sha256()
        self.last = -1

    def add(self, record: Record, decode: Decode) -> None:
        """Count one record (read one at a time: the reference for `add_batch`)."""
        if record.offset <= self.last:
            return  # delivered again: a record counts once
        self.last = record.offset
        self.read += 1
        key, value = record.key, record.value
        self.digest.update(struct.pack(">qqq", record.offset, record.timestamp, _size(key)))
        self.digest.update(key or b"")
        self.digest.update(struct.pack(">q", _size(value)))
        self.digest.update(value or b"")
        try:
            fields = decode(value)
        except ContractViolation:
            self.undecodable += 1
            return
        self.columns.append(record.partition, record.offset, record.timestamp, key, fields)

    def add_batch(self, records: list[Record], pinned: PartitionRange, decode: Decode) -> None:
        """Count the records of one partition polled together, in the order polled, that lie
        in `pinned`: the same counts, digest and columns as `add` on each in turn."""
        offsets = list(map(itemgetter(2), records))
        if not (
            offsets[0] > self.last
            and pinned.start <= offsets[0]
            and offsets[-1] < pinned.end
            and all(map(operator.lt, offsets, offsets[1:]))
        ):
            kept = []  # out of the range, or delivered again: pick them one by one
            for record in records:
                if pinned.start <= record.offset < pinned.end and record.offset > self.last:
                    kept.append(record)
                    self.last = record.offset
            if not kept:
                return
            records, offsets = kept, list(map(itemgetter(2), kept))
        self.last = offsets[-1]
        self.read += len(records)
        stamps = list(map(itemgetter(3), records))
        keys = list(map(itemgetter(4), records))
        values = list(map(itemgetter(5), records))
        key_sizes = [_size(k) for k in keys] if None in keys else list(map(len, keys))
        value_sizes = [_size(v) for v in values] if None in values else list(map(len, values))
        self.digest.update(
            b"".join(
                chain.from_iterable(
                    zip(
                        map(_HEAD, offsets, stamps, key_sizes),
                        [k or b"" for k in keys] if None in keys else keys,
                        map(_SIZE, value_sizes),
                        [v or b"" for v in values] if None in values else values,
                        strict=True,
                    )
                )
            )
        )
        decoded = _decode_batch(values) if decode is _plain_json else None
        if decoded is None:  # one by one: a contract's decoder, or some record is not an object
            keep = []
            decoded = []
            for value in values:
                try:
                    decoded.append(decode(value))
                except ContractViolation:
                    keep.append(False)
                    continue
                keep.append(True)
            if not all(keep):
                self.undecodable += keep.count(False)
                offsets = [x for x, k in zip(offsets, keep, strict=True) if k]
                stamps = [x for x, k in zip(stamps, keep, strict=True) if k]
                keys = [x for x, k in zip(keys, keep, strict=True) if k]
        self.columns.extend(records[0].partition, offsets, stamps, keys, decoded)

    def range(self, pinned: PartitionRange) -> PartitionRange:
        return PartitionRange(
            pinned.partition,
            pinned.start,
            pinned.end,
            records=self.read,
            undecodable=self.undecodable,
            sha256=self.digest.hexdigest(),
        )


def _decode_batch(values: list[bytes | None]) -> list[dict[str, Any] | None] | None:
    """The JSON objects `values` hold (None for a tombstone), as `SourceReader` decodes them
    one by one; None unless every value is a JSON object or a tombstone."""
    try:
        if None in values:
            decoded = [None if v is None else _decode_json_value(v) for v in values]
        else:
            decoded = list(map(_decode_json_value, values))
    except msgspec.DecodeError:
        return None
    if not {dict, type(None)}.issuperset(map(type, decoded)):
        return None
    if None in decoded and decoded.count(None) != values.count(None):
        return None  # some value is JSON null, not a tombstone
    return decoded


def _size(data: bytes | None) -> int:
    return -1 if data is None else len(data)
