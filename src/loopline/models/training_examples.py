"""Reading a topic of labelled examples in bulk, exactly over pinned offset ranges.

Training reads every example of a topic at once, so the per-record work is
kept to filing records: their values are joined into JSON lines and parsed by
Arrow's JSON reader (a column per field, in C++) in a second thread while the
consumer fetches the next batch. A chunk that is not clean JSON lines (a value
that is not an object, or spans lines) is read one value at a time instead, and
a topic bound to a contract is decoded with it.

As `loopline.features.offline.pinned.read_pinned` does, `read_examples` stops
on the consumer's position, never on a count, and digests the records of every
partition so that a later read can prove it read the same ones; the digest does
not depend on how the consumer batched the records.

>>> import tempfile
>>> from loopline.features.offline.pinned import pin
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("examples")
>>> producer = log.producer()
>>> for value in [b'{"x": 1.5, "label": 1, "at": 1700000000}', b"oops", b'{"x": 2, "label": 0}']:
...     producer.send("examples", value, timestamp=1_700_000_000_000)
>>> producer.flush()
3
>>> chunks, read = read_examples(log, pin(log, "examples"))
>>> chunks[0].table.to_pylist()  # epoch seconds become milliseconds; the log time is kept
[{'x': 1.5, 'label': 1, 'at': 1700000000000, '__loopline_log_time': 1700000000000}, \
{'x': 2.0, 'label': 0, 'at': None, '__loopline_log_time': 1700000000000}]
>>> read.records, read.undecodable
(3, 1)
>>> producer.close(); log.close()
"""

from __future__ import annotations

import hashlib
import io
import operator
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json

from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.features.offline.manifests import DatasetError, PartitionRange, TopicRange
from loopline.features.offline.pinned import check_held
from loopline.features.online.times import event_time_ms
from loopline.features.sources import SourceReader
from loopline.log import Log, Record, TopicPartition
from loopline.models.evaluation import DataError

__all__ = ["LOG_TIME", "TIME_FIELDS", "ExampleChunk", "Progress", "read_examples"]

TIME_FIELDS = ("at", "timestamp")
LOG_TIME = "__loopline_log_time"  # the records' log timestamps, for rows without a time field
_CHUNK_RECORDS = 32_768  # records parsed per Arrow call: enough to amortise the call
_SECONDS_BELOW = 100_000_000_000  # as event_time_ms: smaller epoch numbers are seconds

Progress = Callable[[str, int, "int | None"], None]  # (what, done, total or None)


@dataclass(frozen=True)
class ExampleChunk:
    """Examples parsed from consecutive records of one partition."""

    table: pa.Table  # one column per field (nested features flattened), plus LOG_TIME
    undecodable: int
    nested: tuple[str, ...]  # the names of nested features, in order of appearance


_decode_json = msgspec.json.Decoder().decode


def _parse(
    values: list[bytes], times: list[int], decode: Any, time_fields: Sequence[str]
) -> ExampleChunk:
    """The examples in `values` (one record value each); `decode` is None for JSON."""
    table, undecodable = None, 0
    if decode is None:
        data = b"\n".join(values)
        if data.count(b"\n") == len(values) - 1:  # no value spans lines: JSON lines as is
            try:
                table = pa_json.read_json(io.BytesIO(data))
            except pa.ArrowInvalid:
                table = None  # a value that is not a JSON object: read them one by one
    if table is None:
        rows, kept = [], []
        for value, at in zip(values, times, strict=True):
            try:
                row = decode(value) if decode is not None else _decode_json(value)
            except (ContractViolation, msgspec.DecodeError):
                row = None
            if isinstance(row, dict):
                rows.append(row)
                kept.append(at)
            else:
                undecodable += 1
        times = kept
        try:
            table = pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"examples disagree on a field's type: {exc}") from None
    nested: tuple[str, ...] = ()
    if "features" in table.column_names and pa.types.is_struct(table["features"].type):
        kind = table["features"].type
        nested = tuple(kind.field(i).name for i in range(kind.num_fields))
        flat = table["features"].combine_chunks().flatten()
        table = table.drop_columns([c for c in ("features", *nested) if c in table.column_names])
        for name, column in zip(nested, flat, strict=True):
            table = table.append_column(name, column)
    for name in time_fields:
        if name in table.column_names:
            table = table.set_column(
                table.column_names.index(name), name, _epoch_ms(table[name], name)
            )
    return ExampleChunk(
        table.append_column(LOG_TIME, pa.array(times, pa.int64())), undecodable, nested
    )


def _epoch_ms(column: pa.ChunkedArray, name: str) -> pa.Array:
    """A time column as epoch milliseconds (as `event_time_ms` reads times), nulls kept."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        return column.cast(pa.timestamp("ms", kind.tz)).cast(pa.int64())
    if pa.types.is_date(kind):
        return column.cast(pa.timestamp("ms")).cast(pa.int64())
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        ms = np.where(np.abs(values) < _SECONDS_BELOW, np.round(values * 1000), values)
        return pa.array(ms, mask=np.isnan(values)).cast(pa.int64(), safe=False)
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.int64())
    out = []
    for i, value in enumerate(column.to_pylist()):
        try:
            out.append(None if value is None else event_time_ms(value))
        except (ValueError, TypeError):
            raise DataError(
                f"example {i + 1} has time {name}={value!r}: use epoch milliseconds or ISO 8601 "
                "text (2024-05-01T12:00:00Z)"
            ) from None
    return pa.array(out, pa.int64())


_PARTITION, _OFFSET, _TIME, _KEY, _VALUE = (operator.itemgetter(i) for i in range(1, 6))


class _Partition:
    """One partition's records as they are read: counts, digests, and chunks being parsed.

    The reading thread only files records; digesting and parsing happen in the
    parse thread, one chunk after the other in offset order (a single worker),
    while the reading thread fetches the next records.
    """

    def __init__(
        self, pinned: PartitionRange, pool: ThreadPoolExecutor, parse: Callable[..., ExampleChunk]
    ) -> None:
        self.pinned = pinned
        self.pool = pool
        self.parse = parse
        self.last = pinned.start - 1
        self.read = 0
        # Three streams, each the concatenation of per-record pieces in offset order, so the
        # digest does not depend on how the consumer batched the records.
        self.meta, self.keys, self.values = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
        self.pending: list[Record] = []
        self.chunks: list[Future] = []

    def add(self, records: list[Record]) -> None:
        if records[0].offset <= self.last or records[-1].offset >= self.pinned.end:
            records = [r for r in records if self.last < r.offset < self.pinned.end]
            if not records:
                return
        self.last = records[-1].offset
        self.read += len(records)
        self.pending += records
        if len(self.pending) >= _CHUNK_RECORDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.chunks.append(self.pool.submit(self._chunk, self.pending))
        self.pending = []

    def _chunk(self, records: list[Record]) -> ExampleChunk:
        times = list(map(_TIME, records))
        keys = list(map(_KEY, records))
        values = list(map(_VALUE, records))
        key_sizes = list(map(len, keys)) if None not in keys else [_size(k) for k in keys]
        tombstones = None in values
        value_sizes = [_size(v) for v in values] if tombstones else list(map(len, values))
        meta = np.array([list(map(_OFFSET, records)), times, key_sizes, value_sizes], ">i8")
        self.meta.update(meta.T.tobytes())
        self.keys.update(b"".join(k for k in keys if k) if None in keys else b"".join(keys))
        if tombstones:  # tombstones are not examples
            times = [t for t, v in zip(times, values, strict=True) if v is not None]
            values = [v for v in values if v is not None]
        self.values.update(b"".join(values))
        return self.parse(values, times)

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


def read_examples(
    log: Log,
    ranges: TopicRange,
    *,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
    stall_timeout: float = 60.0,
    time_fields: Sequence[str] = TIME_FIELDS,
) -> tuple[list[ExampleChunk], TopicRange]:
    """The examples of exactly `ranges` (in partition, then offset order), and the ranges
    with their counts and digests. A topic bound to a contract is decoded with it.

    Like `loopline.features.offline.pinned.read_pinned`, it stops on the
    consumer's position, not on a count, and raises `DatasetError` when the log
    no longer holds a range or reading stalls.
    """
    topic = ranges.topic
    check_held(log, ranges)
    binding = getattr(schemas, "binding", None)
    decode = SourceReader(schemas).decoder(topic) if binding and binding(topic) else None
    wanted = {TopicPartition(topic, p.partition): p for p in ranges.partitions}
    total = sum(p.end - p.start for p in ranges.partitions)
    with ThreadPoolExecutor(1, thread_name_prefix="loopline-parse") as pool:

        def parse(values: list[bytes], times: list[int]) -> ExampleChunk:
            return _parse(values, times, decode, time_fields)

        parts = {tp.partition: _Partition(p, pool, parse) for tp, p in wanted.items()}
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
                    progress(f"read {topic}", read, total)
                if read != last_read:
                    last_read, since = read, time.monotonic()
                elif time.monotonic() - since > stall_timeout:
                    raise DatasetError(
                        f"reading topic {topic!r} made no progress for {stall_timeout:.0f}s: "
                        "check that the log is reachable and try again"
                    )
        finally:
            consumer.close()
        for part in parts.values():
            part.flush()
        chunks, out = [], []
        for partition in sorted(parts):
            parsed = [f.result() for f in parts[partition].chunks]
            chunks += parsed
            out.append(parts[partition].range(sum(c.undecodable for c in parsed)))
    check_held(log, ranges, while_reading=True)
    return chunks, TopicRange(topic, out)
