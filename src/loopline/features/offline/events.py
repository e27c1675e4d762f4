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
unreadable time) changes nothing online, so it is left out here too.

>>> from loopline.features import Aggregations, Entity, FeatureSet
>>> from loopline.features.declarations import count, sum
>>> member = Entity("member", key="member_id")
>>> views = Aggregations(source="views", entity=member, time="at", features=[
...     *count("views", windows=["1h"]),
...     *sum("long_seconds", field="seconds", windows=["1h"], where=lambda v: v["seconds"] > 60),
... ])
>>> table = events_table(FeatureSet([views]), "views", [
...     {"partition": 0, "offset": 0, "arrival": 1_700_000_001_000,
...      "value": {"member_id": 7, "at": "2023-11-14T22:13:20.990Z", "seconds": 75}},
...     {"partition": 0, "offset": 1, "arrival": 1_700_000_002_000,
...      "value": {"member_id": 7, "at": 1_700_000_001_990, "seconds": 5}},
... ])
>>> table.column_names
['partition', 'offset', 'arrival', 'entity', 'event_time', 'value.seconds', '__pass_long_seconds_1h']
>>> table.column("event_time").to_pylist(), table.column("__pass_long_seconds_1h").to_pylist()
([1700000000990, 1700000001990], [True, False])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from loopline.features.declarations import FeatureSet
from loopline.features.online import event_time_ms

ARRIVAL = "@arrival"  # the time "field" of a group without one


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
        for group in groups:
            for feature in group.features:
                if feature.field is not None:
                    fields[feature.field] = None
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
    if not all(readable):  # unreadable online: they changed nothing there
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
            column = [v is not None and _passes(fn, v) for v in values]
            passes[id(fn)] = pa.array(column, pa.bool_())
        columns[pass_column(feature)] = passes[id(fn)]
    return pa.table(columns)


def _kept(column: list[Any], keep: list[bool]) -> list[Any]:
    return [x for x, k in zip(column, keep, strict=True) if k]


def _entity_id(value: Mapping[str, Any] | None, key_field: str, key: Any) -> str | None:
    entity = None if value is None else value.get(key_field)
    if entity is None:
        entity = key.decode() if isinstance(key, bytes) else key
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


def _passes(fn: Callable[[Mapping[str, Any]], bool], value: Mapping[str, Any]) -> bool:
    try:
        return bool(fn(value))
    except Exception:
        return False


def _typed(source: str, field: str, column: list[Any]) -> pa.Array:
    try:
        return pa.array(column)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise BuildError(
            f"field {field!r} of topic {source!r} mixes value types ({error}); "
            "features need one type per field"
        ) from None
