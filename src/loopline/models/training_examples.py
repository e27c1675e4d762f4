"""Reading a topic of labelled examples in bulk, exactly over pinned offset ranges.

Training reads every example of a topic at once, so the per-record work is
kept to filing records. A chunk of plain JSON values is parsed column-wise by
Arrow's JSON reader (`loopline.features.offline.columnar.json_table`, decision
0032; in C++, without the interpreter's lock) in a second thread while the
consumer fetches the next batch. It answers only when it gives the very table
that decoding each value does (`records_table`, the reference, tested against
it in tests/models/test_training_examples_columnar.py); any other chunk (a
value that is not one JSON object on one line, NaN, a nested list, text Arrow
would take for a timestamp) is read one value at a time, and a topic bound to
a contract is decoded with it. The cyclic garbage collector is paused while a
topic is read (`loopline.log.collector`): records and rows form no cycles, and
its passes over them were a sixth of the reading's time (decision 0035).

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

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.features.offline.columnar import json_table, long_digits
from loopline.features.offline.manifests import DatasetError
from loopline.features.online.times import event_time_ms
from loopline.features.sources import SourceReader
from loopline.log import Log, Record
from loopline.log.collector import collector_paused
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
    """The examples in `values` (one record value each); `decode` is None for JSON.

    Plain JSON values are parsed column-wise (`plain_json_table`); any other chunk,
    and a chunk that way declines, is read value by value (`records_table`).
    """
    table = plain_json_table(values) if decode is None else None
    if table is None:
        table, undecodable, times = records_table(values, times, decode or _decode_json)
        return _examples_chunk(table, times, undecodable, time_fields)
    return _examples_chunk(table, times, 0, time_fields)


def plain_json_table(values: Sequence[bytes]) -> pa.Table | None:
    """The table `records_table` makes of `values`, made by Arrow's JSON reader in one call
    (`loopline.features.offline.columnar.json_table`), or None when it might differ.

    Besides what `json_table` declines: a text Arrow took for a timestamp (the records
    hold text), and a float column when some value holds 19 digits in a row (an integer
    beyond int64, which `records_table` refuses).

    >>> table = plain_json_table([b'{"features": {"x": 1}, "label": 1}', b'{"features": {"x": 2.5}}'])
    >>> table.to_pylist(), table.schema.field("features").type
    ([{'features': {'x': 1.0}, 'label': 1}, {'features': {'x': 2.5}, 'label': None}], \
StructType(struct<x: double>))
    >>> plain_json_table([b'{"at": "2024-05-01T10:00:00Z"}']) is None  # Arrow: a timestamp
    True
    """
    table = json_table(values, nested=True)
    if table is None:
        return None
    columns = [
        child
        for column in table.columns
        for child in (
            column.combine_chunks().flatten() if pa.types.is_struct(column.type) else [column]
        )
    ]
    if any(pa.types.is_timestamp(c.type) for c in columns):
        return None
    # Only a float column can hide an integer beyond int64 (Arrow reads one as a float), and
    # only at 2**63 or more: look for its digits only then (a pass over the bytes).
    if any(_beyond_int64(c) for c in columns if pa.types.is_floating(c.type)) and long_digits(
        values
    ):
        return None
    return table


def _beyond_int64(column: pa.Array | pa.ChunkedArray) -> bool:
    extremes = pc.min_max(pc.abs(column)).as_py()
    return extremes["max"] is not None and extremes["max"] >= 2.0**63


def records_table(
    values: Sequence[bytes], times: Sequence[int], decode: Callable[[bytes], Any]
) -> tuple[pa.Table | None, int, list[int]]:
    """The examples of `values` decoded one by one (the reference the columnar way is tested
    against): a table of a row per value that decodes to a dict and a column per field, in
    order of first appearance (None when there is none), how many values did not decode
    to a dict, and the log times of the rows.

    >>> table, undecodable, times = records_table(
    ...     [b'{"x": 1}', b"oops", b'{"y": true, "x": 2.5}'], [10, 20, 30], _decode_json)
    >>> table.to_pylist(), undecodable, times
    ([{'x': 1.0, 'y': None}, {'x': 2.5, 'y': True}], 1, [10, 30])
    """
    rows, kept, undecodable = [], [], 0
    for value, at in zip(values, times, strict=True):
        try:
            row = decode(value)
        except (ContractViolation, msgspec.DecodeError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
            kept.append(at)
        else:
            undecodable += 1
    names = dict.fromkeys(name for row in rows for name in row)
    if not names:
        return None, undecodable, kept
    try:
        table = pa.table({name: _column([row.get(name) for row in rows]) for name in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"examples disagree on a field's type: {exc}") from None
    return table, undecodable, kept


def _column(values: list[Any]) -> pa.Array:
    """`pa.array(values)`, integers beside floats made floats (as Arrow's JSON reader makes
    them) also where `pa.array` refuses an integer no float holds exactly."""
    try:
        return pa.array(values)
    except pa.ArrowInvalid:
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, dict) for v in present):
            names = list(dict.fromkeys(k for v in present for k in v))
            children = [_column([None if v is None else v.get(k) for v in values]) for k in names]
            nulls = pa.array([v is None for v in values])
            return pa.StructArray.from_arrays(children, names, mask=nulls)
        if not any(type(v) is float for v in present):
            raise
        return pa.array([float(v) if type(v) is int else v for v in values])


def _examples_chunk(
    table: pa.Table | None, times: list[int], undecodable: int, time_fields: Sequence[str]
) -> ExampleChunk:
    """A chunk of `table`: nested features flattened, time fields made epoch ms, log times."""
    if table is None or table.num_columns == 0:
        return ExampleChunk(pa.table({LOG_TIME: pa.array(times, pa.int64())}), undecodable, ())
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
        with collector_paused():
            read = read_ranges(
                log, ranges, parse, progress=read_so_far, stall_timeout=stall_timeout
            )
    except RangeError as exc:
        raise DatasetError(f"{exc}: the examples pinned then cannot be read") from None
    return read.chunks, read.ranges
