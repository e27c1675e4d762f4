"""Spines: the (entity, instant) rows a dataset gives features to, from a file or a topic.

A spine has an entity column (``entity``, else the entity's key field such as
``member_id``), a time column (named by the caller, else ``at``, else
``timestamp``) and any other columns (a label, a weight), which pass through
to the dataset unchanged. Times are epoch milliseconds, ISO 8601 strings
(a time without a zone is UTC) or timestamp and date types, read as features
read event times (`event_time_ms`: numbers below 10^11 are epoch seconds).

Files are Parquet, CSV or JSON lines (by extension). A topic spine holds
records' fields; a record without the entity field is keyed by its log key,
and without a time field (``at`` or ``timestamp``) it is timed by its log
timestamp, as features read source records.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "spine.csv"
>>> _ = path.write_text("member_id,at,label\\n007,2023-11-14T22:13:20Z,1\\n8,1700000001000,0\\n")
>>> spine = read_spine_file(path, key_field="member_id")
>>> spine.entity_column, spine.time_column
('member_id', 'at')
>>> spine.table.to_pylist()
[{'entity': '007', 'at': 1700000000000, 'label': 1}, {'entity': '8', 'at': 1700000001000, 'label': 0}]
>>> _ = path.write_text("member_id,at\\n007,yesterday\\n")
>>> read_spine_file(path, key_field="member_id")
Traceback (most recent call last):
...
loopline.features.offline.manifests.DatasetError: spine file ... row 1: cannot read time column 'at' from 'yesterday'; use epoch milliseconds, ISO 8601 text (2024-05-01T12:00:00Z) or a timestamp type
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopline.features.offline.manifests import DatasetError
from loopline.features.online import event_time_ms

TIME_COLUMNS = ("at", "timestamp")
FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_SECONDS_BELOW = 100_000_000_000  # as event_time_ms: smaller epoch numbers are seconds
_UNIT = {"s": 1000, "ms": 1, "us": 1_000, "ns": 1_000_000}  # ms per s, else units per ms
TIME_HELP = "use epoch milliseconds, ISO 8601 text (2024-05-01T12:00:00Z) or a timestamp type"


@dataclass(frozen=True)
class Spine:
    """A spine as `build` reads it: ``entity`` and ``at`` (epoch ms) columns, then the rest,
    and the names those two columns had (the dataset gets them back)."""

    table: pa.Table
    entity_column: str
    time_column: str

    def restore(self, rows: pa.Table) -> pa.Table:
        """`rows` (built from this spine) with the entity and time columns named as given."""
        names = {"entity": self.entity_column, "at": self.time_column}
        spine_columns = set(self.table.column_names)
        return rows.rename_columns(
            [names.get(n, n) if n in spine_columns else n for n in rows.column_names]
        )


def spine_format(path: str | Path) -> str:
    """The format of a spine file by its extension (a `DatasetError` for an unknown one)."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DatasetError(
            f"cannot read spine file {str(path)!r}: unknown file type "
            f"{Path(path).suffix or '(none)'!r}; use .parquet, .csv or .jsonl (JSON lines)"
        )
    return fmt


def read_spine_file(
    path: str | Path,
    *,
    key_field: str,
    entity_column: str | None = None,
    time_column: str | None = None,
    text: Sequence[str] = (),
) -> Spine:
    """The spine in the file at `path` (Parquet, CSV or JSON lines).

    CSV entity ids (and the columns `text`) are read as text, so ``007`` stays ``007``.
    """
    origin = f"spine file {str(path)!r}"
    fmt = spine_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif fmt == "csv":
            import pyarrow.csv as csv

            text_types = {c: pa.string() for c in (entity_column or "entity", key_field, *text)}
            table = csv.read_csv(path, convert_options=csv.ConvertOptions(column_types=text_types))
        else:
            import pyarrow.json as json

            table = json.read_json(path)
    except FileNotFoundError:
        raise DatasetError(f"no {origin}: check the path") from None
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"cannot read {origin} as {fmt}: {exc}") from None
    return as_spine(
        table,
        key_field=key_field,
        entity_column=entity_column,
        time_column=time_column,
        origin=origin,
        where=lambda i: f"row {i + 1}",
    )


def spine_from_records(
    topic: str,
    records: Sequence[Mapping[str, Any]],
    *,
    key_field: str,
    entity_column: str | None = None,
    time_column: str | None = None,
) -> Spine:
    """The spine held by a topic's decoded records (as `read_pinned` returns them).

    Tombstones are no rows. A record whose value lacks the entity field takes
    its log key; without a time field, rows take their log timestamp (as the
    column ``timestamp``).

    >>> records = [
    ...     {"partition": 0, "offset": 0, "arrival": 1_700_000_000_000, "key": b"m1",
    ...      "value": {"label": 1}},
    ...     {"partition": 0, "offset": 1, "arrival": 1_700_000_001_000, "key": None,
    ...      "value": {"member_id": "m2", "label": 0}},
    ...     {"partition": 0, "offset": 2, "arrival": 1_700_000_002_000, "key": b"m1",
    ...      "value": None},  # a tombstone: no row
    ... ]
    >>> spine = spine_from_records("labels", records, key_field="member_id")
    >>> spine.entity_column, spine.time_column
    ('member_id', 'timestamp')
    >>> spine.table.to_pylist()
    [{'label': 1, 'entity': 'm1', 'at': 1700000000000}, {'label': 0, 'entity': 'm2', 'at': 1700000001000}]
    """
    origin = f"spine topic {topic!r}"
    rows = [r for r in records if r["value"] is not None]
    fields = list(dict.fromkeys(name for r in rows for name in r["value"]))
    entity_column = entity_column or ("entity" if "entity" in fields else key_field)
    time_column = time_column or next((c for c in TIME_COLUMNS if c in fields), "timestamp")
    if time_column not in fields and time_column != "timestamp":
        raise DatasetError(
            f"{origin} has no field {time_column!r} to read times from; its records have "
            f"{fields}: name one with --time-column (or 'timestamp' for the log timestamp)"
        )
    columns: dict[str, list[Any]] = {name: [r["value"].get(name) for r in rows] for name in fields}
    entities = columns.get(entity_column) or [None] * len(rows)
    columns[entity_column] = [
        _entity_id(v if v is not None else r.get("key"))
        for v, r in zip(entities, rows, strict=True)
    ]
    if time_column not in fields:
        columns[time_column] = [r["arrival"] for r in rows]
    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DatasetError(
                f"field {name!r} of {origin} mixes value types ({exc}); "
                "a spine column needs one type"
            ) from None
    return as_spine(
        pa.table(arrays),
        key_field=key_field,
        entity_column=entity_column,
        time_column=time_column,
        origin=origin,
        where=lambda i: f"record at partition {rows[i]['partition']} offset {rows[i]['offset']}",
    )


def _entity_id(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return None if value is None or value == "" else str(value)


def as_spine(
    table: pa.Table,
    *,
    key_field: str,
    entity_column: str | None,
    time_column: str | None,
    origin: str,
    where: Callable[[int], str],
) -> Spine:
    """`table` as a `Spine`: its entity and time columns found, checked and converted.

    `origin` says where the table came from and `where(i)` names its row `i`,
    for errors.
    """
    names = table.column_names
    entity_column = entity_column or next((c for c in ("entity", key_field) if c in names), None)
    if entity_column is None or entity_column not in names:
        wanted = f"'entity' or {key_field!r}" if entity_column is None else repr(entity_column)
        raise DatasetError(
            f"{origin} has no entity column: it needs a column {wanted} holding entity ids; "
            f"its columns are {names}"
        )
    chosen = time_column or next((c for c in TIME_COLUMNS if c in names), None)
    if chosen is None or chosen not in names:
        raise DatasetError(
            f"{origin} has no time column "
            + (f"{chosen!r}" if chosen else "'at' or 'timestamp'")
            + f": its columns are {names}; name the column holding each row's instant "
            "with --time-column"
        )
    if table.num_rows == 0:
        raise DatasetError(f"{origin} has no rows: a dataset needs at least one")
    for name, taken in (("entity", entity_column), ("at", chosen)):
        if name in names and name not in (entity_column, chosen):
            raise DatasetError(
                f"{origin} has a column {name!r} besides its {'entity' if name == 'entity' else 'time'} "
                f"column {taken!r}: rename one of them"
            )
    entity = table.column(entity_column)
    if entity.null_count:
        first = entity.is_null().to_pylist().index(True)
        raise DatasetError(
            f"{origin}, {where(first)}: the entity column {entity_column!r} is empty; "
            "every row needs an entity id"
        )
    at = _times(table.column(chosen), chosen, origin, where)
    columns, fields = [], []
    for name in names:
        column = table.column(name)
        if name == entity_column:
            name = "entity"
        elif name == chosen:
            name, column = "at", at
        columns.append(column)
        fields.append(pa.field(name, column.type))  # without metadata: the dataset is ours
    return Spine(pa.table(columns, schema=pa.schema(fields)), entity_column, chosen)


def _times(
    column: pa.ChunkedArray, name: str, origin: str, where: Callable[[int], str]
) -> pa.Array:
    """Epoch ms (int64) of every value of a time column, or a `DatasetError` naming the row."""
    if column.null_count:
        first = column.is_null().to_pylist().index(True)
        raise DatasetError(
            f"{origin}, {where(first)}: the time column {name!r} is empty; "
            "every row needs an instant"
        )
    kind = column.type
    if pa.types.is_integer(kind):
        values = column.to_numpy().astype(np.int64)
        return pa.array(np.where(np.abs(values) < _SECONDS_BELOW, values * 1000, values))
    if pa.types.is_floating(kind):
        values = column.to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            raise DatasetError(
                f"{origin}, {where(int(np.argmax(bad)))}: time column {name!r} holds "
                f"{values[bad][0]}; {TIME_HELP}"
            )
        seconds = np.abs(values) < _SECONDS_BELOW
        ms = np.where(seconds, np.round(values * 1000), np.floor(values))
        return pa.array(ms.astype(np.int64))
    if pa.types.is_timestamp(kind):
        raw = column.cast(pa.int64()).to_numpy()
        return pa.array(_floor_ms(raw, kind.unit))
    if pa.types.is_date32(kind):
        return pa.array(column.cast(pa.int32()).to_numpy().astype(np.int64) * 86_400_000)
    if pa.types.is_date64(kind):
        return pa.array(column.cast(pa.int64()).to_numpy())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        for target in (pa.timestamp("ns", "UTC"), pa.timestamp("ns")):
            try:
                raw = pc.cast(column, target).cast(pa.int64()).to_numpy()
            except pa.ArrowException:
                continue
            return pa.array(_floor_ms(raw, "ns"))
        return pa.array([_text_time(v, i, name, origin, where) for i, v in enumerate(column)])
    raise DatasetError(f"{origin}: time column {name!r} holds {kind} values; {TIME_HELP}")


def _floor_ms(raw: np.ndarray, unit: str) -> np.ndarray:
    if unit == "s":
        return raw.astype(np.int64) * 1000
    return np.floor_divide(raw.astype(np.int64), _UNIT[unit])


def _text_time(
    value: pa.Scalar, i: int, name: str, origin: str, where: Callable[[int], str]
) -> int:
    """One text time the vectorised casts could not read, read as features read event times."""
    text = value.as_py().strip()
    try:
        return event_time_ms(text)
    except ValueError:
        pass
    try:
        return event_time_ms(float(text) if "." in text else int(text))
    except ValueError:
        raise DatasetError(
            f"{origin}, {where(i)}: cannot read time column {name!r} from {text!r}; {TIME_HELP}"
        ) from None
