"""Feature sources as pyarrow tables: what the offline builder reads.

One table per source topic, one row per record, with the columns
docs/decisions/0008 speaks of:

- ``partition`` (int32), ``offset`` (int64): the record's position;
- ``arrival`` (int64, ms): its log timestamp;
- ``entity`` (string): the entity id, from the value's key field, else the
  record's log key (as online);
- ``event_time`` (int64, ms; aggregation sources): the declared time field
  (read as online, by `event_time_ms`), or the arrival when none is declared;
  null for a tombstone, which is no event;
- ``deleted`` (bool; table sources): the record is a tombstone;
- ``value.<field>``: each field a feature reads (null when absent);
- ``__pass_<feature>`` (bool): the feature's ``where`` filter, run here once per
  record by the same Python function the online processor runs (a filter that
  raises rejects the record, as online), so the SQL never calls back into Python.

When declarations of one topic disagree on the key field or the time field
(clicks per member and per tag), there is one ``entity.<key field>`` or
``event_time.<time field>`` column per choice instead (``event_time.@arrival``
for none). A record the online processor cannot read (no entity id, an
unreadable time, a value a feature reads and cannot use, such as the string
"5.5" where a sum reads numbers) changes nothing online and is dead-lettered
there, so it is left out here too, and counted: `unusable_records`.

>>> from loopline.features import Aggregations, Entity, FeatureSet
>>> from loopline.features.aggregations import Count, Sum
>>> member = Entity("member", key="member_id")
>>> views = Aggregations(source="views", entity=member, time="at", features=[
...     Count(window="1h", name="views_1h"),
...     Sum("seconds", window="1h", name="seconds_1h"),
...     Sum("seconds", window="1h", name="long_seconds_1h", where=lambda v: v["seconds"] > 60),
... ])
>>> table = events_table(FeatureSet([views]), "views", [
...     {"partition": 0, "offset": 0, "arrival": 1_700_000_001_000,
...      "value": {"member_id": 7, "at": "2023-11-14T22:13:20.990Z", "seconds": 75}},
...     {"partition": 0, "offset": 1, "arrival": 1_700_000_002_000,
...      "value": {"member_id": 7, "at": 1_700_000_001_990, "seconds": 5}},
...     {"partition": 0, "offset": 2, "arrival": 1_700_000_003_000,
...      "value": {"member_id": 7, "at": 1_700_000_002_000, "seconds": "61"}},
... ])
>>> table.column_names
['partition', 'offset', 'arrival', 'entity', 'event_time', 'value.seconds', '__pass_long_seconds_1h']
>>> table.column("event_time").to_pylist(), table.column("__pass_long_seconds_1h").to_pylist()
([1700000000990, 1700000001990], [True, False])
>>> unusable_records(table)  # "61" is no number to sum: online dead-letters it
1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.features.aggregations import Aggregation, Filter
from loopline.features.declarations import FeatureSet
from loopline.features.offline.unusable import (
    checks_itself,
    counted,
    passes_filter,
    unusable_mask,
    unusable_records,
)
from loopline.features.online import event_time_ms
from loopline.features.sources import key_entity

ARRIVAL = "@arrival"  # the time "field" of a group without one

__all__ = [
    "BuildError",
    "EventColumns",
    "events_table",
    "events_table_of_columns",
    "unusable_records",
]


class BuildError(ValueError):
    """An input the offline builder cannot use: a source, a spine, a value (says which, why)."""


def field_column(field: str) -> str:
    """The column holding `field` of a record's value."""
    return f"value.{field}"


def pass_column(feature: str) -> str:
    """The column holding whether a record passes `feature`'s `where` filter."""
    return f"__pass_{feature}"


def entity_column(source: pa.Table, key_field: str) -> str:
    """The column of `source` holding the entity ids read from `key_field`."""
    return _pick(source, "entity", key_field)


def time_column(source: pa.Table, time_field: str | None) -> str:
    """The column of `source` holding the event times read from `time_field`."""
    return _pick(source, "event_time", time_field or ARRIVAL)


def _pick(source: pa.Table, base: str, choice: str) -> str:
    for name in (f"{base}.{choice}", base):
        if name in source.column_names:
            return name
    raise BuildError(f"the source table has no column {base!r}; build it with events_table")


@dataclass(frozen=True)
class SourceLayout:
    """What every declaration reading one topic needs from its records."""

    source: str
    key_fields: tuple[str, ...]
    time_fields: tuple[str | None, ...]  # one per choice among the aggregations; None: arrival
    tabled: bool  # some Table reads the topic: it needs `deleted`
    fields: tuple[str, ...]
    filters: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...]  # (feature, where)
    checks: tuple[tuple[str, Aggregation[Any], Filter | None], ...]  # (field, feature, where)

    @classmethod
    def of(cls, feature_set: FeatureSet, source: str) -> SourceLayout:
        groups = [g for g in feature_set.aggregations if g.source == source]
        tables = [t for t in feature_set.tables if t.source == source]
        if not groups and not tables:
            read = {g.source for g in feature_set.aggregations}
            read |= {t.source for t in feature_set.tables}
            raise BuildError(f"no feature reads topic {source!r}; features read {sorted(read)}")
        fields: dict[str, None] = {}
        filters = []
        checks = []
        for group in groups:
            for feature in group.features:
                if feature.field is not None:
                    fields[feature.field] = None
                    if feature.types is not None or checks_itself(feature):
                        checks.append((feature.field, feature, feature.where))
                if feature.where is not None:
                    filters.append((feature.name, feature.where))
        for table in tables:
            for column in table.features:
                fields[column.field] = None
        return cls(
            source=source,
            key_fields=tuple(dict.fromkeys(d.key_field for d in [*groups, *tables])),
            time_fields=tuple(dict.fromkeys(g.time for g in groups)),
            tabled=bool(tables),
            fields=tuple(fields),
            filters=tuple(filters),
            checks=tuple(checks),
        )


def events_table(
    feature_set: FeatureSet, source: str, records: Iterable[Mapping[str, Any]]
) -> pa.Table:
    """The table of topic `source` for `build`, from its decoded records in any order.

    Each record is a mapping with ``partition``, ``offset``, ``arrival`` (the log
    timestamp, ms), ``value`` (the decoded value, None for a tombstone) and
    ``key`` (the log key, optional: the entity id when the value has none).
    """
    layout = SourceLayout.of(feature_set, source)
    rows = list(records)
    values = [r["value"] for r in rows]
    entities = {
        k: [_entity_id(v, k, r.get("key")) for v, r in zip(values, rows, strict=True)]
        for k in layout.key_fields
    }
    times = {
        t: [_event_time(v, t, r["arrival"]) for v, r in zip(values, rows, strict=True)]
        for t in layout.time_fields
    }
    readable = [True] * len(rows)
    for column in entities.values():
        readable = [ok and e is not None for ok, e in zip(readable, column, strict=True)]
    for column in times.values():
        readable = [
            ok and (t is not None or v is None)
            for ok, t, v in zip(readable, column, values, strict=True)
        ]
    unusable = unusable_mask(layout.checks, values)
    if unusable is not None:
        readable = [ok and not bad for ok, bad in zip(readable, unusable.tolist(), strict=True)]
    left_out = len(readable) - sum(readable)
    if left_out:  # unreadable online: they changed nothing there
        rows, values = _kept(rows, readable), _kept(values, readable)
        entities = {k: _kept(column, readable) for k, column in entities.items()}
        times = {t: _kept(column, readable) for t, column in times.items()}
    columns: dict[str, pa.Array] = {
        "partition": pa.array([r["partition"] for r in rows], pa.int32()),
        "offset": pa.array([r["offset"] for r in rows], pa.int64()),
        "arrival": pa.array([r["arrival"] for r in rows], pa.int64()),
    }
    for k, column in entities.items():
        name = "entity" if len(entities) == 1 else f"entity.{k}"
        columns[name] = pa.array(column, pa.string())
    for t, column in times.items():
        name = "event_time" if len(times) == 1 else f"event_time.{t or ARRIVAL}"
        columns[name] = pa.array(column, pa.int64())
    if layout.tabled:
        columns["deleted"] = pa.array([v is None for v in values], pa.bool_())
    for field in layout.fields:
        column = [None if v is None else v.get(field) for v in values]
        columns[field_column(field)] = _typed(source, field, column)
    # A family of features (one per window) shares one filter: run each function once.
    passes: dict[int, pa.Array] = {}
    for feature, fn in layout.filters:
        if id(fn) not in passes:
            column = [v is not None and passes_filter(fn, v) for v in values]
            passes[id(fn)] = pa.array(column, pa.bool_())
        columns[pass_column(feature)] = passes[id(fn)]
    return counted(pa.table(columns), left_out)


@dataclass
class EventColumns:
    """Decoded records of a topic as columns: what `events_table_of_columns` reads.

    Row i is the record at ``offset[i]`` of ``partition[i]``, with log timestamp
    ``arrival[i]``, log key ``key[i]`` (bytes or None) and decoded value ``value[i]``
    (a field dict, None for a tombstone).
    """

    partition: list[int]
    offset: list[int]
    arrival: list[int]
    key: list[Any]
    value: list[Mapping[str, Any] | None]

    @classmethod
    def empty(cls) -> EventColumns:
        return cls([], [], [], [], [])

    @classmethod
    def of(cls, records: Iterable[Mapping[str, Any]]) -> EventColumns:
        """The columns of records as `events_table` takes them."""
        columns = cls.empty()
        for r in records:
            columns.append(r["partition"], r["offset"], r["arrival"], r.get("key"), r["value"])
        return columns

    @classmethod
    def concat(cls, parts: Iterable[EventColumns]) -> EventColumns:
        columns = cls.empty()
        for part in parts:
            columns.partition += part.partition
            columns.offset += part.offset
            columns.arrival += part.arrival
            columns.key += part.key
            columns.value += part.value
        return columns

    def append(
        self, partition: int, offset: int, arrival: int, key: Any, value: Mapping[str, Any] | None
    ) -> None:
        self.partition.append(partition)
        self.offset.append(offset)
        self.arrival.append(arrival)
        self.key.append(key)
        self.value.append(value)

    def extend(
        self,
        partition: int,
        offsets: list[int],
        arrivals: list[int],
        keys: list[Any],
        values: list[Mapping[str, Any] | None],
    ) -> None:
        """Append the records of one partition."""
        self.partition += [partition] * len(offsets)
        self.offset += offsets
        self.arrival += arrivals
        self.key += keys
        self.value += values

    def __len__(self) -> int:
        return len(self.offset)

    def records(self) -> list[dict[str, Any]]:
        """The records one by one, as `events_table` takes them."""
        return [
            {"partition": p, "offset": o, "arrival": a, "key": k, "value": v}
            for p, o, a, k, v in zip(
                self.partition, self.offset, self.arrival, self.key, self.value, strict=True
            )
        ]


def events_table_of_columns(
    feature_set: FeatureSet, source: str, columns: EventColumns
) -> pa.Table:
    """`events_table` of the records `columns` hold: the same table, built column-wise.

    What is simple is computed over whole columns (entity ids that are strings
    or integers, event times that are integers or finite floats); anything else
    (ISO strings, mixed types, missing values) is read record by record exactly
    as `events_table` reads it. `where` filters run once per record, as there.
    """
    layout = SourceLayout.of(feature_set, source)
    values = columns.value
    n = len(values)
    tombstones = None in values
    if tombstones:
        dicts: list[Any] = [_EMPTY if v is None else v for v in values]
    else:
        dicts = values
    get = dict.get if {dict}.issuperset(map(type, dicts)) else _get
    entities = {k: _entities(dicts, k, get, values, columns.key) for k in layout.key_fields}
    times = {t: _times(dicts, t, get, values, columns.arrival) for t in layout.time_fields}
    keep: np.ndarray | None = None
    for column in entities.values():
        if None in column:
            missing = np.fromiter((e is None for e in column), bool, n)
            keep = ~missing if keep is None else keep & ~missing
    for column in times.values():
        if isinstance(column, list):  # has None: unreadable, unless a tombstone
            bad = np.fromiter(
                (t is None and v is not None for t, v in zip(column, values, strict=True)), bool, n
            )
            keep = ~bad if keep is None else keep & ~bad
    read: dict[str, list[Any]] = {}
    unusable = unusable_mask(layout.checks, dicts, get, read)
    if unusable is not None:
        keep = ~unusable if keep is None else keep & ~unusable
    left_out = 0 if keep is None else n - int(keep.sum())
    partition = np.asarray(columns.partition, np.int32)
    offset = np.asarray(columns.offset, np.int64)
    arrival = np.asarray(columns.arrival, np.int64)
    if keep is not None and not keep.all():  # unreadable online: they changed nothing there
        index = np.flatnonzero(keep).tolist()
        partition, offset, arrival = partition[keep], offset[keep], arrival[keep]
        values = [values[i] for i in index]
        dicts = [dicts[i] for i in index]
        entities = {k: [column[i] for i in index] for k, column in entities.items()}
        times = {
            t: column[keep] if isinstance(column, np.ndarray) else [column[i] for i in index]
            for t, column in times.items()
        }
    table: dict[str, pa.Array] = {
        "partition": pa.array(partition, pa.int32()),
        "offset": pa.array(offset, pa.int64()),
        "arrival": pa.array(arrival, pa.int64()),
    }
    for k, column in entities.items():
        name = "entity" if len(entities) == 1 else f"entity.{k}"
        table[name] = pa.array(column, pa.string())
    for t, column in times.items():
        name = "event_time" if len(times) == 1 else f"event_time.{t or ARRIVAL}"
        table[name] = pa.array(column, pa.int64())
    if layout.tabled:
        if tombstones:
            table["deleted"] = pa.array([v is None for v in values], pa.bool_())
        else:
            table["deleted"] = pa.array(np.zeros(len(values), bool), pa.bool_())
    for field in layout.fields:
        if left_out == 0 and field in read:
            column = read[field]  # no record was left out: the column read for the checks
        else:
            column = list(map(get, dicts, repeat(field)))
        table[field_column(field)] = _typed(source, field, column)
    passes: dict[int, pa.Array] = {}
    for feature, fn in layout.filters:
        if id(fn) not in passes:
            passed = [v is not None and passes_filter(fn, v) for v in values]
            passes[id(fn)] = pa.array(passed, pa.bool_())
        table[pass_column(feature)] = passes[id(fn)]
    return counted(pa.table(table), left_out)


_EMPTY: Mapping[str, Any] = {}


def _get(value: Mapping[str, Any], field: str) -> Any:
    return value.get(field)


def _entities(
    dicts: list[Any], key_field: str, get: Callable[..., Any], values: list[Any], keys: list[Any]
) -> list[str | None]:
    """The entity ids read from `key_field` (else the log key), as `_entity_id` reads them."""
    found = list(map(get, dicts, repeat(key_field)))
    types = set(map(type, found))
    if types <= {str, int} and "" not in found:
        return found if types == {str} else list(map(str, found))
    return [_entity_id(v, key_field, k) for v, k in zip(values, keys, strict=True)]


def _times(
    dicts: list[Any],
    field: str | None,
    get: Callable[..., Any],
    values: list[Any],
    arrivals: list[int],
) -> np.ndarray | list[int | None]:
    """The event times read from `field`, as `_event_time` reads them: an array when every
    record has one, else a list with None for the unreadable ones and tombstones."""
    if field is None:
        if None in values:
            return [None if v is None else a for v, a in zip(values, arrivals, strict=True)]
        return np.asarray(arrivals, np.int64)
    found = list(map(get, dicts, repeat(field)))
    types = set(map(type, found))
    if None not in values and types == {int}:
        try:
            raw = np.asarray(found, np.int64)
        except OverflowError:
            raw = None
        if raw is not None:
            seconds = (raw > -_SECONDS_BELOW) & (raw < _SECONDS_BELOW)
            return np.where(seconds, raw * 1000, raw)
    if None not in values and types == {float}:
        raw = np.asarray(found, np.float64)
        if np.isfinite(raw).all() and (np.abs(raw) < 2.0**63).all():
            seconds = np.abs(raw) < _SECONDS_BELOW
            with np.errstate(over="ignore", invalid="ignore"):
                ms = np.where(seconds, np.rint(raw * 1000), np.floor(raw))
            return ms.astype(np.int64)
    return [_event_time(v, field, a) for v, a in zip(values, arrivals, strict=True)]


_SECONDS_BELOW = 100_000_000_000  # as `event_time_ms`


def _kept(column: list[Any], keep: list[bool]) -> list[Any]:
    return [x for x, k in zip(column, keep, strict=True) if k]


def _entity_id(value: Mapping[str, Any] | None, key_field: str, key: Any) -> str | None:
    entity = None if value is None else value.get(key_field)
    if entity is None and key is not None:
        entity = key_entity(key.decode() if isinstance(key, bytes) else key, key_field)
    if entity is None or entity == "":
        return None
    return entity if isinstance(entity, str) else str(entity)


def _event_time(value: Mapping[str, Any] | None, field: str | None, arrival: int) -> int | None:
    if value is None:
        return None  # a tombstone is no event
    if field is None:
        return arrival
    try:
        return event_time_ms(value.get(field))
    except ValueError:
        return None


def _typed(source: str, field: str, column: list[Any]) -> pa.Array:
    try:
        return pa.array(column)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise BuildError(
            f"field {field!r} of topic {source!r} mixes value types ({error}); "
            "features need one type per field"
        ) from None
