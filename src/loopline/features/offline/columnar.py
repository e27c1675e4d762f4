"""A chunk of plain JSON records decoded column-wise: Arrow's JSON reader, then whole columns.

`events_table_of_columns` turns records decoded one by one (a Python dict
each, by `msgspec`) into a feature source's events table. For a topic of
plain JSON objects that is most of a dataset build's time, one record at a
time and holding the interpreter's lock. `events_table_of_json` makes the
same table from the raw values of a chunk: the values joined into one buffer
of JSON lines, parsed by `pyarrow.json.read_json` (in C++, on Arrow's
threads, without the interpreter's lock, so it runs beside the thread that
polls the log), and the table's columns cut from Arrow's columns without a
Python object per record (docs/decisions/0032).

It answers only when it can be sure the table is the one the record-by-record
path gives; otherwise it returns None and the caller takes that path (the
reference, tested against this one in tests/features/test_datasets_columnar.py):

- every value is one JSON object on one line that both parsers accept: each
  starts with ``{``, none holds a line break, Arrow finds as many rows as
  values, the bytes are UTF-8, no number is NaN or infinite (Arrow reads
  those literals, msgspec refuses them) and no column is nested;
- no tombstone, no ``where`` filter (a filter is a Python function of the
  record's dict) and no kind that checks its values itself;
- the entity ids are strings (not empty) or integers, the event times
  integers, and the fields features read are of one type a feature of them
  reads (integer, float, string, boolean, or absent);
- a column of floats the features read holds no run of 19 digits: Arrow
  reads an integer too large for int64 as a float, where the record-by-record
  path keeps it an integer (and refuses it).

>>> from loopline.features import Aggregations, Entity, FeatureSet
>>> from loopline.features.aggregations import Count, Sum
>>> member = Entity("member", key="member_id")
>>> features = FeatureSet([Aggregations("views", member, time="at", features=[
...     Count(window="1h", name="views_1h"), Sum("seconds", window="1h", name="seconds_1h")])])
>>> layout = SourceLayout.of(features, "views")
>>> values = [b'{"member_id":"m1","at":1700000000990,"seconds":7.5}',
...           b'{"member_id":"m2","at":1700000001,"seconds":2}']
>>> table = events_table_of_json(layout, 0, [0, 1], [1_700_000_001_000] * 2, [None] * 2, values)
>>> table.select(["entity", "event_time", "value.seconds"]).to_pylist()
[{'entity': 'm1', 'event_time': 1700000000990, 'value.seconds': 7.5}, \
{'entity': 'm2', 'event_time': 1700000001000, 'value.seconds': 2.0}]
>>> nan = [b'{"member_id": "m1", "at": 1, "seconds": NaN}']  # msgspec refuses NaN
>>> events_table_of_json(layout, 0, [0], [1], [None], nan) is None
True
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from loopline.features.offline.events import (
    ARRIVAL,
    BuildError,
    SourceLayout,
    field_column,
)
from loopline.features.offline.unusable import checks_itself, counted, unusable_records

__all__ = ["concat_events", "events_table_of_json", "json_table", "long_digits"]

_LINES = pa_json.ReadOptions(use_threads=True, block_size=1 << 24)
_PYTHON_TYPES: dict[pa.DataType, frozenset[type]] = {
    pa.int64(): frozenset({int}),
    pa.float64(): frozenset({int, float}),  # Arrow makes floats of integers beside floats
    pa.string(): frozenset({str}),
    pa.bool_(): frozenset({bool}),
    pa.null(): frozenset(),
}
_SECONDS_BELOW = 100_000_000_000  # as `event_time_ms`
_OPEN, _NEWLINE, _RETURN = ord("{"), b"\n", b"\r"


def events_table_of_json(
    layout: SourceLayout,
    partition: int,
    offsets: Sequence[int],
    arrivals: Sequence[int],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
) -> pa.Table | None:
    """The events table of one partition's records (their offsets, log timestamps, keys and
    raw JSON values), as `events_table_of_columns` makes it of the decoded records; None
    when this way cannot be sure of it (see the module's docstring)."""
    n = len(values)
    if n == 0 or layout.filters or None in values:
        return None
    if any(checks_itself(feature) for _, feature, _ in layout.checks):
        return None
    parsed = json_table(values)  # type: ignore[arg-type]  # no tombstone: all bytes
    if parsed is None:
        return None
    columns: dict[str, Any] = {
        "partition": pa.array(np.full(n, partition, np.int32)),
        "offset": pa.array(np.asarray(offsets, np.int64)),
        "arrival": pa.array(np.asarray(arrivals, np.int64)),
    }
    read: list[pa.ChunkedArray] = []  # what features read: the columns to look at for digits
    for k in layout.key_fields:
        entity = _entities(parsed, k, keys)
        if entity is None:
            return None
        columns["entity" if len(layout.key_fields) == 1 else f"entity.{k}"] = entity
        if k in parsed.column_names:
            read.append(parsed.column(k))
    for t in layout.time_fields:
        times = _times(parsed, t, columns["arrival"])
        if times is None:
            return None
        columns["event_time" if len(layout.time_fields) == 1 else f"event_time.{t or ARRIVAL}"] = (
            times
        )
    if layout.tabled:
        columns["deleted"] = pa.array(np.zeros(n, bool))
    for field in layout.fields:
        column = parsed.column(field) if field in parsed.column_names else pa.nulls(n)
        if column.type not in _PYTHON_TYPES:
            return None  # a timestamp: the text Arrow took for one is a string to features
        for f, feature, _ in layout.checks:
            if f == field and not _PYTHON_TYPES[column.type] <= set(feature.types or ()):
                return None  # some value may be unusable: the record-by-record path says which
        read.append(column)
        columns[field_column(field)] = column
    if any(c.type == pa.float64() for c in read) and long_digits(values):
        return None
    return counted(pa.table(columns), 0)


def json_table(values: Sequence[bytes], *, nested: bool = False) -> pa.Table | None:
    """The table of `values` (one JSON object each), a row per value and a column per field
    in order of first appearance, parsed by Arrow's JSON reader in one call; None when it
    might differ from decoding each value with msgspec and making a table of the dicts.

    It declines (see the module's docstring): no value, a value that is not one JSON object
    on one line, bytes that are not UTF-8, NaN or infinity, a column of lists or objects
    (with `nested`, an object column of plain fields is kept: a struct). Two differences
    are left to the caller, who knows which columns matter: a column Arrow typed as a
    timestamp holds text in the records, and a float column may hold an integer beyond
    int64 when `long_digits` says so.

    >>> json_table([b'{"x": 1, "f": {"a": 2}}', b'{"x": 2.5, "y": "b"}'], nested=True).to_pylist()
    [{'x': 1.0, 'f': {'a': 2}, 'y': None}, {'x': 2.5, 'f': None, 'y': 'b'}]
    >>> json_table([b'{"x": 1, "f": {"a": 2}}'], nested=False) is None
    True
    >>> json_table([b'{"x": NaN}']) is None, json_table([b'{"x": 1}', b""]) is None
    (True, True)
    """
    n = len(values)
    if n == 0:
        return None
    data = b"\n".join(values)
    if data.count(_NEWLINE) != n - 1 or _RETURN in data or not _objects(data, values):
        return None
    try:
        pa.array([data], pa.binary()).cast(pa.string())  # UTF-8, as msgspec insists
        parsed = pa_json.read_json(io.BytesIO(data), read_options=_LINES)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if parsed.num_rows != n:
        return None
    for column in parsed.columns:
        if pa.types.is_struct(column.type) and nested:
            children = column.combine_chunks().flatten()
            if not all(_plain(pa.chunked_array([c])) for c in children):
                return None
        elif not _plain(column):
            return None
    return parsed


def long_digits(values: Sequence[bytes]) -> bool:
    """Whether some value holds 19 digits in a row: an integer Arrow may have read as a float,
    where msgspec keeps it an integer (beyond int64: refused by a table)."""
    return _long_digits(b"\n".join(values))


def _objects(data: bytes, values: Sequence[bytes]) -> bool:
    """Whether every value starts with ``{`` (so that no line is blank)."""
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    if not lengths.all():
        return False
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    return bool((np.frombuffer(data, np.uint8)[starts] == _OPEN).all())


def _plain(column: pa.ChunkedArray) -> bool:
    """A column of a type both parsers read alike: no nesting, no NaN or infinity."""
    kind = column.type
    if kind == pa.float64():
        return pc.all(pc.is_finite(column)).as_py() is not False  # nulls skipped
    return kind in _PYTHON_TYPES or pa.types.is_timestamp(kind)


def _entities(parsed: pa.Table, key_field: str, keys: Sequence[bytes | None]) -> Any:
    """The entity ids of key field `key_field` (else the log key, as `_entity_id` reads
    them), or None when some record needs the record-by-record path."""
    if key_field in parsed.column_names and parsed.column(key_field).null_count == 0:
        column = parsed.column(key_field)
        if column.type == pa.int64():
            return column.cast(pa.string())
        if column.type == pa.string() and pc.min(pc.binary_length(column)).as_py() > 0:
            return column
        return None
    if key_field in parsed.column_names and parsed.column(key_field).null_count < len(keys):
        return None  # some records have an id, some do not
    if None in keys or b"" in keys:
        return None
    try:
        return pa.array(keys, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        return None


def _times(parsed: pa.Table, field: str | None, arrivals: pa.Array) -> pa.Array | None:
    """The event times of `field` (epoch seconds below 10**11 made ms, as `event_time_ms`),
    the arrivals when none is declared, or None when not every one is an integer."""
    if field is None:
        return arrivals
    if field not in parsed.column_names:
        return None
    column = parsed.column(field)
    if column.type != pa.int64() or column.null_count:
        return None
    raw = column.to_numpy()
    seconds = (raw > -_SECONDS_BELOW) & (raw < _SECONDS_BELOW)
    return pa.array(np.where(seconds, raw * 1000, raw))


def _long_digits(data: bytes) -> bool:
    """Whether `data` holds 19 digits in a row (an integer Arrow may have read as a float)."""
    run = (np.frombuffer(data, np.uint8) - ord("0")) <= 9  # wraps below "0": not a digit
    for step in (1, 2, 4, 8, 3):  # runs of 2, 4, 8, 16, then 19
        run = run[:-step] & run[step:]
        if not run.any():
            return False
    return True


def concat_events(source: str, tables: list[pa.Table]) -> pa.Table:
    """The events tables of a topic's chunks as one, each column of the type building it from
    all records at once gives (integers beside floats: floats; beside nulls: integers), or
    `BuildError` when a field's chunks hold types no one column can (as `_typed` says);
    the records left out of each are added up."""
    if not tables:
        raise ValueError("no chunk to concatenate")
    left_out = sum(unusable_records(t) for t in tables)
    names = tables[0].column_names
    if any(t.column_names != names for t in tables):  # a pass or deleted column is not optional
        raise ValueError("chunks of one topic with different columns")
    types: dict[str, pa.DataType] = {}
    for name in names:
        found = {t.schema.field(name).type for t in tables} - {pa.null()}
        if found == {pa.int64(), pa.float64()}:
            types[name] = pa.float64()
        elif len(found) > 1:
            kinds = " and ".join(sorted(str(t) for t in found))
            field = name.removeprefix("value.")
            raise BuildError(
                f"field {field!r} of topic {source!r} mixes value types ({kinds}); "
                "features need one type per field"
            )
        else:
            types[name] = found.pop() if found else pa.null()
    schema = pa.schema([(name, types[name]) for name in names])
    try:
        cast = [t.replace_schema_metadata(None).cast(schema) for t in tables]
    except pa.ArrowInvalid as error:  # an integer no float holds exactly
        raise BuildError(
            f"a field of topic {source!r} mixes value types ({error}); "
            "features need one type per field"
        ) from None
    out = pa.concat_tables(cast).combine_chunks()
    return counted(out, left_out)
