"""One `Aggregations` group at every spine row (docs/decisions/0008).

A record counts for a feature at `T` when it is not late (behind its
partition's watermark by more than the allowed lateness), known
(``arrival <= T``), in the window (``start(T) <= event_time < T``) and passes
the feature's filter. Known and before `T` together say ``ready <= T``, where
``ready = max(arrival, event_time + 1)``; `records.Records` holds the records
that can count. Then:

Each feature's kind (`loopline.features.aggregations`) says how it can be
computed; the fastest form it offers is used:

- `Aggregation.difference` (counts, and sums and means of fields with an
  exact fixed point, `sql.exact_scale`, in every window): differences of
  running sums, computed in numpy (`running`);
- `Aggregation.lifetime_sql` (lifetime min, max, last: running aggregates of
  the entity's records in ready order, each key reading the last state ready
  by its `T` in an ASOF join, so no key meets more than one row however long
  the entity's history; lifetime distinct: the values first ready by `T`);
- `Aggregation.sql` (every kind: windowed min, max, last and distinct, sums of
  fields without an exact fixed point): each key joined with its entity's
  records in the window (`joined`).

`GroupPlan` is the SQL of the last two, for the features `by_difference`
leaves to it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from loopline.features.aggregations import NUMBERS, Aggregation
from loopline.features.declarations import Aggregations, Window
from loopline.features.offline import joined
from loopline.features.offline.events import BuildError, field_column, pass_column
from loopline.features.offline.sql import exact_scale, quote

RUNNING = "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def exact_scales(group: Aggregations, source: pa.Table) -> dict[str, int | None]:
    """The `exact_scale` of every field `group` sums or averages (None: not exact)."""
    summed = {f.field for f in group.features if f.summed and f.field}
    return {
        field: exact_scale(source.column(field_column(field)), source.num_rows)
        for field in sorted(summed)
    }


def by_difference(feature: Aggregation[Any], scales: dict[str, int | None]) -> bool:
    """Whether `feature` is a difference of running sums (`running`), not SQL."""
    return feature.by_difference(scales)


class GroupPlan:
    """The statements computing `features` of one group per spine key, into table `name`,
    from the group's `records.Records` registered as table ``<name>_e``."""

    def __init__(
        self,
        group: Aggregations,
        features: list[Aggregation[Any]],
        name: str,
        scales: dict[str, int | None],
    ) -> None:
        self.group, self.features, self.name, self.scales = group, features, name, scales
        self.measures: dict[str, str] = {}  # running aggregate in ready order -> column
        self.expressions: dict[str, str] = {}  # feature -> SQL over the final joins
        self.joined: dict[Window, list[Aggregation[Any]]] = {}
        self.distinct: list[tuple[str, str | None]] = []  # (value, filter) of first_ready
        for feature in features:
            assert not by_difference(feature, scales), feature.name
            self.expressions[feature.name] = self._plan(feature)

    def columns(self) -> list[str]:
        """The value and filter columns of the source the statements read."""
        out = []
        for feature in self.features:
            if feature.field is not None:
                out.append(field_column(feature.field))
            if feature.where is not None:
                out.append(pass_column(feature.name))
        return list(dict.fromkeys(out))

    def windows(self) -> set[Window]:
        """The windows whose start the spine keys must hold."""
        return {w for w in self.joined if w.length is not None}

    def _measure(self, aggregate: str) -> str:
        return self.measures.setdefault(aggregate, f"m{len(self.measures)}")

    def _plan(self, feature: Aggregation[Any]) -> str:
        if feature.window.length is None and feature.field is not None:
            passes = quote(pass_column(feature.name)) if feature.where else None
            value = quote(field_column(feature.field))
            lifetime = feature.lifetime_sql(self, value, passes)
            if lifetime is not None:
                return lifetime
        self.joined.setdefault(feature.window, []).append(feature)
        return f"j{list(self.joined).index(feature.window)}.{quote(feature.name)}"

    def running(self, aggregate: str) -> str:
        """`LifetimePlan.running`: `aggregate` over the entity's records in ready order,
        read by each key as of its instant."""
        return "rd." + self._measure(aggregate)

    def first_ready(self, value: str, passes: str | None) -> str:
        """`LifetimePlan.first_ready`: the number of distinct `value`s (of the records
        passing `passes`) ready by each key's instant."""
        self.distinct.append((value, passes))
        return f"d{len(self.distinct) - 1}.n"

    def statements(self, keys: str) -> list[str]:
        """SQL statements leaving every feature per key of `keys` in table `self.name`."""
        n = self.name
        out, joins = [], []
        if self.measures:
            measures = ", ".join(f"{a} OVER w AS {c}" for a, c in self.measures.items())
            out.append(
                f"CREATE TEMP TABLE {n}_ready AS SELECT entity, ready, {measures} FROM {n}_e "
                f"WINDOW w AS (PARTITION BY entity ORDER BY ready {RUNNING})"
            )
            joins.append(
                f'ASOF LEFT JOIN {n}_ready rd ON k.entity = rd.entity AND rd.ready <= k."at"'
            )
        for i, (value, passes) in enumerate(self.distinct):
            out.append(f"CREATE TEMP TABLE {n}_d{i} AS {self._first_values(value, passes)}")
            joins.append(
                f'ASOF LEFT JOIN {n}_d{i} d{i} ON k.entity = d{i}.entity AND d{i}.ready <= k."at"'
            )
        for i, (window, features) in enumerate(self.joined.items()):
            sql = joined.window_sql(f"{n}_e", keys, window, features)
            out.append(f"CREATE TEMP TABLE {n}_j{i} AS {sql}")
            joins.append(f"LEFT JOIN {n}_j{i} j{i} ON j{i}.__key = k.__key")
        columns = "".join(f",\n       {sql} AS {quote(f)}" for f, sql in self.expressions.items())
        out.append(
            f"CREATE TEMP TABLE {n} AS SELECT k.__key{columns}\nFROM {keys} k\n" + "\n".join(joins)
        )
        return out

    def _first_values(self, value: str, passes: str | None) -> str:
        """When each distinct value is first ready, and the running count."""
        condition = f" AND {passes}" if passes else ""
        return (
            f"SELECT entity, ready, count(*) OVER w AS n FROM ("
            f"SELECT entity, min(ready) AS ready FROM {self.name}_e "
            f"WHERE {value} IS NOT NULL{condition} GROUP BY entity, {value}) "
            f"WINDOW w AS (PARTITION BY entity ORDER BY ready {RUNNING})"
        )

    def finish(self, rows: pa.Table) -> pa.Table:
        """`rows` with each joined feature's values finished by its kind (`Aggregation.finish`:
        sums of fields without an exact scale, gathered as lists, summed by `math.fsum`)."""
        for features in self.joined.values():
            for feature in features:
                if type(feature).finish is Aggregation.finish:
                    continue
                values = feature.finish(rows.column(feature.name).to_pylist())
                array = values if isinstance(values, pa.Array) else pa.array(values)
                i = rows.column_names.index(feature.name)
                rows = rows.set_column(i, feature.name, array)
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
        if feature.types == NUMBERS and not numeric:
            raise BuildError(
                f"feature {feature.name!r} ({feature.kind} of {feature.field!r}) needs numbers, "
                f"but topic {group.source!r} holds {kind} values"
            )
