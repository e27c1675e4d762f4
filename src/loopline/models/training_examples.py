"""Reading a topic of labelled examples in bulk, exactly over pinned offset ranges.

Training reads every example of a topic at once, so the per-record work is
kept to filing records: their values are joined into JSON lines and parsed by
Arrow's JSON reader (a column per field, in C++) in a second thread while the
consumer fetches the next batch. A chunk that is not clean JSON lines (a value
that is not an object, or spans lines) is read one value at a time instead, and
a topic bound to a contract is decoded with it.

The reading itself is `loopline.stream.ranges.read_ranges`, the one reader
of pinned ranges (datasets use it too): it stops on the consumer's position,
never on a count, digests the records of every partition so that a later read
can prove it read the same ones, and runs the parsing in a second thread.

>>> import tempfile
>>> from loopline.stream.ranges import pin
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

import io
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json

from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.features.offline.manifests import DatasetError
from loopline.features.online.times import event_time_ms
from loopline.features.sources import SourceReader
from loopline.log import Log, Record
from loopline.models.evaluation import DataError
from loopline.stream.ranges import RangeError, TopicRange, read_ranges

__all__ = ["LOG_TIME", "TIME_FIELDS", "ExampleChunk", "Progress", "read_examples"]

TIME_FIELDS = ("at", "timestamp")
LOG_TIME = "__loopline_log_time"  # the records' log timestamps, for rows without a time field
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


_TIME, _VALUE = operator.itemgetter(3), operator.itemgetter(5)


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

    The reading is `loopline.stream.ranges.read_ranges` (as for datasets): it
    stops on the consumer's position, not on a count, and a `DatasetError` says
    when the log no longer holds a range or reading stalls.
    """
    topic = ranges.topic
    binding = getattr(schemas, "binding", None)
    decode = SourceReader(schemas).decoder(topic) if binding and binding(topic) else None

    def parse(partition: int, records: list[Record]) -> tuple[ExampleChunk, int]:
        times = list(map(_TIME, records))
        values = list(map(_VALUE, records))
        if None in values:  # tombstones are not examples
            times = [t for t, v in zip(times, values, strict=True) if v is not None]
            values = [v for v in values if v is not None]
        chunk = _parse(values, times, decode, time_fields)
        return chunk, chunk.undecodable

    def read_so_far(done: int, total: int) -> None:
        if progress is not None:
            progress(f"read {topic}", done, total)

    try:
        read = read_ranges(log, ranges, parse, progress=read_so_far, stall_timeout=stall_timeout)
    except RangeError as exc:
        raise DatasetError(f"{exc}: the examples pinned then cannot be read") from None
    return read.chunks, read.ranges
