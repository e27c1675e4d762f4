"""The SQL of one `Aggregations` group at every spine key (docs/decisions/0008).

A record counts for a feature at `T` when it is not late (behind its
partition's watermark by more than the allowed lateness), known
(``arrival <= T``), in the window (``start(T) <= event_time < T``) and passes
the feature's filter. Known and before `T` together say ``ready <= T``, where
``ready = max(arrival, event_time + 1)``, which gives the plan:

- *lifetime* values are running aggregates of the entity's records in ready
  order, each key reading the last state ready by its `T` (an ASOF join), so
  no key meets more than one row however long the entity's history;
- *windowed counts and sums* are differences of running sums (HUGEINT, exact):
  ``ready by T`` minus ``event time before start`` plus the records with an
  event time before the start that arrive after `T`, which only a record
  arriving more than ``length - tile`` after its event time can be;
- *windowed min, max, last and distinct*, which cannot be subtracted, join
  each key with its entity's records in the window (`joined`).
"""

from __future__ import annotations

import math

import pyarrow as pa

from loopline.features.declarations import Aggregate, Aggregations, Window
from loopline.features.offline import joined
from loopline.features.offline.events import (
    BuildError,
    entity_column,
    field_column,
    pass_column,
    time_column,
)
from loopline.features.offline.sql import (
    exact_scale,
    exact_sum_sql,
    filtered,
    power_sql,
    quote,
    start_column,
)

RUNNING = "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
WATERMARK = (  # the largest event time earlier in the partition
    'max(event_time) OVER (PARTITION BY partition ORDER BY "offset" '
    "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
)


def exact_column(field: str) -> str:
    return f"__exact_{field}"


class GroupPlan:
    """The statements computing one group's features per spine key, into table `name`."""

    def __init__(self, group: Aggregations, name: str, source: pa.Table) -> None:
        self.group, self.name, self.source = group, name, source
        summed = {f.field for f in group.features if f.kind in ("sum", "mean") and f.field}
        self.scales = {
            field: exact_scale(source.column(field_column(field)), source.num_rows)
            for field in sorted(summed)
        }
        self.measures: dict[str, tuple[str, bool]] = {}  # aggregate -> (column, invertible)
        self.expressions: dict[str, str] = {}  # feature -> SQL over the final joins
        self.joined: dict[Window, list[Aggregate]] = {}
        self.distinct: list[Aggregate] = []
        self.shifted: dict[Window, int] = {}  # windows read by difference -> index
        for feature in group.features:
            self.expressions[feature.name] = self._plan(feature)

    def _measure(self, aggregate: str, invertible: bool) -> str:
        column, _ = self.measures.setdefault(aggregate, (f"m{len(self.measures)}", invertible))
        return column

    def _running(self, aggregate: str, window: Window) -> str:
        """SQL of the sum of `aggregate` over a feature's records at the key."""
        column = self._measure(aggregate, invertible=True)
        total = f"coalesce(rd.{column}, 0)"
        if window.length is None:
            return total
        i = self.shifted.setdefault(window, len(self.shifted))
        return f"({total} - coalesce(ev{i}.{column}, 0) + coalesce(x{i}.{column}, 0))"

    def _plan(self, feature: Aggregate) -> str:
        passes = quote(pass_column(feature.name)) if feature.where else None
        lifetime = feature.window.length is None
        if feature.kind == "count":
            return f"NULLIF({self._running(filtered('count(*)', passes), feature.window)}, 0)"
        assert feature.field is not None
        value = quote(field_column(feature.field))
        present = f"{value} IS NOT NULL"
        if feature.kind in ("sum", "mean") and self.scales[feature.field] is not None:
            exact = quote(exact_column(feature.field))
            total = self._running(filtered(f"sum({exact})", passes, present), feature.window)
            n = self._running(filtered(f"count({value})", passes), feature.window)
            value = exact_sum_sql(total, self.scales[feature.field])
            average = f" / {n}" if feature.kind == "mean" else ""
            return f"CASE WHEN {n} > 0 THEN {value}{average} END"
        if lifetime and feature.kind in ("min", "max"):
            return "rd." + self._measure(filtered(f"{feature.kind}({value})", passes), False)
        if lifetime and feature.kind == "last":
            last = f"arg_max({value}, {joined.POSITION})"
            return "rd." + self._measure(filtered(last, passes, present), False)
        if lifetime and feature.kind == "distinct":
            self.distinct.append(feature)
            return f"d{len(self.distinct) - 1}.n"
        self.joined.setdefault(feature.window, []).append(feature)
        return f"j{list(self.joined).index(feature.window)}.{quote(feature.name)}"

    def statements(self, table: str, keys: str) -> list[str]:
        """SQL statements leaving every feature per key of `keys` in table `self.name`."""
        n = self.name
        out = [f"CREATE TEMP TABLE {n}_e AS {self._records(table, keys)}"]
        joins = []
        if self.measures:
            out.append(self._running_table(f"{n}_ready", "ready", invertible_only=False))
            joins.append(
                f'ASOF LEFT JOIN {n}_ready rd ON k.entity = rd.entity AND rd.ready <= k."at"'
            )
        if self.shifted:
            out.append(self._running_table(f"{n}_event", "event_time", invertible_only=True))
        for window, i in self.shifted.items():
            start = f"k.{quote(start_column(window))}"
            joins.append(
                f"ASOF LEFT JOIN {n}_event ev{i} "
                f"ON k.entity = ev{i}.entity AND ev{i}.event_time < {start}"
            )
            out.append(f"CREATE TEMP TABLE {n}_x{i} AS {self._straddling(window, keys)}")
            joins.append(f"LEFT JOIN {n}_x{i} x{i} ON x{i}.__key = k.__key")
        for i, feature in enumerate(self.distinct):
            out.append(f"CREATE TEMP TABLE {n}_d{i} AS {self._first_values(feature)}")
            joins.append(
                f'ASOF LEFT JOIN {n}_d{i} d{i} ON k.entity = d{i}.entity AND d{i}.ready <= k."at"'
            )
        for i, (window, features) in enumerate(self.joined.items()):
            sql = joined.window_sql(f"{n}_e", keys, window, features, self.scales)
            out.append(f"CREATE TEMP TABLE {n}_j{i} AS {sql}")
            joins.append(f"LEFT JOIN {n}_j{i} j{i} ON j{i}.__key = k.__key")
        columns = "".join(f",\n       {sql} AS {quote(f)}" for f, sql in self.expressions.items())
        out.append(
            f"CREATE TEMP TABLE {n} AS SELECT k.__key{columns}\nFROM {keys} k\n" + "\n".join(joins)
        )
        return out

    def _records(self, table: str, keys: str) -> str:
        """The group's known-able records: not late, with an entity, event time and ready time."""
        time = quote(time_column(self.source, self.group.time))
        columns = [
            "partition",
            '"offset"',
            "arrival",
            f"{quote(entity_column(self.source, self.group.key_field))} AS entity",
            f"{time} AS event_time",
            f"greatest(arrival, {time} + 1) AS ready",
        ]
        for feature in self.group.features:
            if feature.field is not None:
                columns.append(quote(field_column(feature.field)))
            if feature.where is not None:
                columns.append(quote(pass_column(feature.name)))
        for field, scale in self.scales.items():
            if scale is not None:
                scaled = f"({quote(field_column(field))}::DOUBLE * {power_sql(scale)})::HUGEINT"
                columns.append(f"{scaled} AS {quote(exact_column(field))}")
        late = f"(event_time < {WATERMARK} - {int(self.group.lateness)})"
        # Every record of a partition sets its watermark; only the spine's entities are read.
        return (
            f"SELECT * FROM (SELECT * FROM (SELECT {', '.join(dict.fromkeys(columns))} "
            f"FROM {quote(table)} WHERE {time} IS NOT NULL) QUALIFY {late} IS NOT TRUE) "
            f"WHERE entity IN (SELECT entity FROM {keys})"
        )

    def _running_table(self, name: str, order: str, invertible_only: bool) -> str:
        measures = [
            f"{aggregate} OVER w AS {column}"
            for aggregate, (column, invertible) in self.measures.items()
            if invertible or not invertible_only
        ]
        return (
            f"CREATE TEMP TABLE {name} AS SELECT entity, {order}, {', '.join(measures)} "
            f"FROM {self.name}_e WINDOW w AS (PARTITION BY entity ORDER BY {order} {RUNNING})"
        )

    def _straddling(self, window: Window, keys: str) -> str:
        """Per key, the records before the window's start that arrive after the key's instant."""
        assert window.length is not None and window.tile is not None
        measures = [
            f"{aggregate} AS {column}"
            for aggregate, (column, invertible) in self.measures.items()
            if invertible
        ]
        lag = window.length - window.tile
        return (
            f"SELECT k.__key, {', '.join(measures)} FROM {keys} k JOIN "
            f"(SELECT * FROM {self.name}_e WHERE arrival - event_time > {lag}) e "
            f"ON e.entity = k.entity AND e.event_time < k.{quote(start_column(window))} "
            f'AND e.arrival > k."at" GROUP BY k.__key'
        )

    def _first_values(self, feature: Aggregate) -> str:
        """When each distinct value of `feature` is first ready, and the running count."""
        assert feature.field is not None
        value = quote(field_column(feature.field))
        passes = f" AND {quote(pass_column(feature.name))}" if feature.where else ""
        return (
            f"SELECT entity, ready, count(*) OVER w AS n FROM ("
            f"SELECT entity, min(ready) AS ready FROM {self.name}_e "
            f"WHERE {value} IS NOT NULL{passes} GROUP BY entity, {value}) "
            f"WINDOW w AS (PARTITION BY entity ORDER BY ready {RUNNING})"
        )

    def finish(self, rows: pa.Table) -> pa.Table:
        """`rows` with the sums and means of fields without an exact scale summed by
        `math.fsum` (gathered as lists by `joined`)."""
        for feature in self.group.features:
            if feature.kind not in ("sum", "mean") or self.scales[feature.field or ""] is not None:
                continue
            mean = feature.kind == "mean"
            sums = [
                None if not vs else math.fsum(vs) / len(vs) if mean else math.fsum(vs)
                for vs in rows.column(feature.name).to_pylist()
            ]
            i = rows.column_names.index(feature.name)
            rows = rows.set_column(i, feature.name, pa.array(sums, pa.float64()))
        return rows


def check_types(group: Aggregations, source: pa.Table) -> None:
    """Refuse fields a kind cannot aggregate, naming the feature and the type found."""
    for feature in group.features:
        if feature.field is None:
            continue
        column = field_column(feature.field)
        if column not in source.column_names:
            raise BuildError(
                f"feature {feature.name!r}: the table of topic {group.source!r} has no column "
                f"{column!r}; build it with events_table"
            )
        kind = source.schema.field(column).type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)
        if feature.kind in ("sum", "mean") and not numeric:
            raise BuildError(
                f"feature {feature.name!r} ({feature.kind} of {feature.field!r}) needs numbers, "
                f"but topic {group.source!r} holds {kind} values"
            )
