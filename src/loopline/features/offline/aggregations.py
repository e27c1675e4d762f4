"""One `Aggregations` group at every spine row (docs/decisions/0008).

A record counts for a feature at `T` when it is not late (behind its
partition's watermark by more than the allowed lateness), known
(``arrival <= T``), in the window (``start(T) <= event_time < T``) and passes
the feature's filter. Known and before `T` together say ``ready <= T``, where
``ready = max(arrival, event_time + 1)``; `records.Records` holds the records
that can count. Then:

- *counts*, and *sums and means* of fields with an exact fixed point
  (`sql.exact_scale`), in every window, are differences of running sums,
  computed in numpy (`running`);
- *lifetime min, max and last* are running aggregates of the entity's
  records in ready order, each key reading the last state ready by its `T`
  (an ASOF join in DuckDB), so no key meets more than one row however long
  the entity's history; *lifetime distinct* counts the values first ready
  by `T` the same way;
- *windowed min, max, last and distinct*, and sums of fields without an
  exact fixed point, which cannot be subtracted, join each key with its
  entity's records in the window (`joined`).

`GroupPlan` is the SQL of the last two, for the features `by_difference`
leaves to it.
"""

from __future__ import annotations

import math

import pyarrow as pa

from loopline.features.declarations import Aggregate, Aggregations, Window
from loopline.features.offline import joined
from loopline.features.offline.events import BuildError, field_column, pass_column
from loopline.features.offline.sql import exact_scale, filtered, quote

RUNNING = "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def exact_scales(group: Aggregations, source: pa.Table) -> dict[str, int | None]:
    """The `exact_scale` of every field `group` sums or averages (None: not exact)."""
    summed = {f.field for f in group.features if f.kind in ("sum", "mean") and f.field}
    return {
        field: exact_scale(source.column(field_column(field)), source.num_rows)
        for field in sorted(summed)
    }


def by_difference(feature: Aggregate, scales: dict[str, int | None]) -> bool:
    """Whether `feature` is a difference of running sums (`running`), not SQL."""
    if feature.kind == "count":
        return True
    return feature.kind in ("sum", "mean") and scales.get(feature.field or "") is not None


class GroupPlan:
    """The statements computing `features` of one group per spine key, into table `name`,
    from the group's `records.Records` registered as table ``<name>_e``."""

    def __init__(
        self,
        group: Aggregations,
        features: list[Aggregate],
        name: str,
        scales: dict[str, int | None],
    ) -> None:
        self.group, self.features, self.name, self.scales = group, features, name, scales
        self.measures: dict[str, str] = {}  # running aggregate in ready order -> column
        self.expressions: dict[str, str] = {}  # feature -> SQL over the final joins
        self.joined: dict[Window, list[Aggregate]] = {}
        self.distinct: list[Aggregate] = []
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

    def _plan(self, feature: Aggregate) -> str:
        passes = quote(pass_column(feature.name)) if feature.where else None
        lifetime = feature.window.length is None
        assert feature.field is not None
        value = quote(field_column(feature.field))
        present = f"{value} IS NOT NULL"
        if lifetime and feature.kind in ("min", "max"):
            return "rd." + self._measure(filtered(f"{feature.kind}({value})", passes))
        if lifetime and feature.kind == "last":
            last = f"arg_max({value}, {joined.POSITION})"
            return "rd." + self._measure(filtered(last, passes, present))
        if lifetime and feature.kind == "distinct":
            self.distinct.append(feature)
            return f"d{len(self.distinct) - 1}.n"
        self.joined.setdefault(feature.window, []).append(feature)
        return f"j{list(self.joined).index(feature.window)}.{quote(feature.name)}"

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
        for feature in self.features:
            if feature.kind not in ("sum", "mean"):
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
