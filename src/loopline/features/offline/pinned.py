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
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopline.contracts.codecs import ContractViolation
from loopline.features.offline.manifests import DatasetError, PartitionRange, TopicRange
from loopline.features.sources import Decode, SourceReader
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


@dataclass
class PinnedRead:
    """What `read_pinned` read: decoded records (as `events_table` takes them) and the ranges
    with their counts and digests."""

    records: list[dict[str, Any]]
    ranges: TopicRange


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
            for record in consumer.poll(max_records=10_000, timeout=0.5):
                p = wanted.get(TopicPartition(record.topic, record.partition))
                if p is not None and p.start <= record.offset < p.end:
                    counts[TopicPartition(record.topic, record.partition)].add(record, decode)
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
        records=[r for tp in sorted(wanted) for r in counts[tp].records],
        ranges=TopicRange(
            topic, [counts[tp].range(p) for tp, p in sorted(wanted.items(), key=_first)]
        ),
    )


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


class _Count:
    """The records of one partition read so far, their count and digest."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.read = 0
        self.undecodable = 0
        self.digest = hashlib.sha256()
        self.last = -1

    def add(self, record: Record, decode: Decode) -> None:
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
        self.records.append(
            {
                "partition": record.partition,
                "offset": record.offset,
                "arrival": record.timestamp,
                "key": key,
                "value": fields,
            }
        )

    def range(self, pinned: PartitionRange) -> PartitionRange:
        return PartitionRange(
            pinned.partition,
            pinned.start,
            pinned.end,
            records=self.read,
            undecodable=self.undecodable,
            sha256=self.digest.hexdigest(),
        )


def _size(data: bytes | None) -> int:
    return -1 if data is None else len(data)
