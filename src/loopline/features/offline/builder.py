"""The point-in-time builder: feature vectors of a spine of (entity, instant) rows.

`build` answers, for every spine row, what the online processor would have
read for that entity at that instant (docs/decisions/0008), set-based, from
the source tables of `events_table`: counts, sums and means as differences of
running sums in numpy (`running`), the other aggregations and tables in
DuckDB (`aggregations`, `tables`), each aggregation by the forms its kind
offers (`loopline.features.aggregations`); derived features in Python, by the
declared functions themselves.

>>> from loopline.features import Aggregations, Derived, Entity, FeatureSet
>>> from loopline.features.aggregations import Count, Sum
>>> from loopline.features.offline import events_table
>>> member = Entity("member", key="member_id")
>>> views = Aggregations(source="views", entity=member, time="at", features=[
...     Count(window="10m", name="views_10m"), Sum("seconds", window="10m", name="seconds_10m")])
>>> per_view = Derived("seconds_per_view", ("seconds_10m", "views_10m"), lambda s, n: s / n)
>>> features = FeatureSet([views], derived=[per_view])
>>> t0 = 1_700_000_000_000  # epoch ms; a minute tile starts here
>>> records = [{"partition": 0, "offset": i, "arrival": t0 + t + 500,
...             "value": {"member_id": "m1", "at": t0 + t, "seconds": 10.0 * (i + 1)}}
...            for i, t in enumerate([60_000, 120_000, 180_000])]
>>> spine = pa.table({"entity": ["m1", "m1", "m2"],
...                   "at": [t0 + 120_000, t0 + 200_000, t0 + 200_000]})
>>> rows = build(features, {"views": events_table(features, "views", records)}, spine)
>>> rows.select(["views_10m", "seconds_10m", "seconds_per_view"]).to_pylist()[0]
{'views_10m': 1, 'seconds_10m': 10.0, 'seconds_per_view': 10.0}
>>> rows.column("views_10m").to_pylist(), rows.column("seconds_per_view").to_pylist()
([1, 3, 0], [10.0, 20.0, None])
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import numpy as np
import pyarrow as pa

from loopline.features.declarations import Aggregations, Derived, FeatureSet, Table
from loopline.features.offline.aggregations import (
    GroupPlan,
    by_difference,
    check_types,
    exact_scales,
)
from loopline.features.offline.events import BuildError, entity_column, time_column
from loopline.features.offline.records import Records, SpineKeys
from loopline.features.offline.running import Measures, Running
from loopline.features.offline.sql import quote, start_column, start_sql
from loopline.features.offline.tables import check_columns, table_sql
from loopline.features.offline.values import (
    BuildReport,
    canonical,
    derived_order,
    run_derived,
    with_default,
)


def build(
    feature_set: FeatureSet,
    sources: Mapping[str, pa.Table],
    spine: pa.Table,
    *,
    entity: str | None = None,
    entities: Mapping[str, str] | None = None,
    report: BuildReport | None = None,
) -> pa.Table:
    """The spine with one more column per feature of its entity, in declaration order.

    `sources` maps each topic the features read to its `events_table`. `spine`
    has ``entity`` (the entity id) and ``at`` (epoch ms) columns; the rest
    (a label, ...) passes through unchanged, in the spine's row order. `entity`
    names the spine's entity when the features describe several. The same
    inputs give a byte-identical table.

    `entities` maps entity names to spine columns instead, for rows about
    several related entities (a member and a candidate item): the spine has
    one id column per entity (a null id: an entity without records) and
    ``at``, and gets the features of every one of them plus the derived
    features whose inputs are all among them, as `OnlineFeatures.vector`
    gives for ``{name: id, ...}``.

    `report`, when given, is filled with what got a default silently (see
    `BuildReport`).

    >>> from loopline.features import Derived, Entity, Table, TableFeature
    >>> from loopline.features.offline import events_table
    >>> member, item = Entity("member", "member_id"), Entity("item", "item_id")
    >>> features = FeatureSet(tables=[
    ...     Table("profiles", member, [TableFeature("country", "country", default="??")]),
    ...     Table("items", item, [TableFeature("item_country", "country", default="??")]),
    ... ], derived=[Derived("same_country", ("country", "item_country"), lambda a, b: a == b)])
    >>> def rows(topic, *values):
    ...     return events_table(features, topic, [
    ...         {"partition": 0, "offset": i, "arrival": 1_000, "value": v}
    ...         for i, v in enumerate(values)])
    >>> sources = {"profiles": rows("profiles", {"member_id": "m1", "country": "PT"}),
    ...            "items": rows("items", {"item_id": "i7", "country": "PT"},
    ...                                   {"item_id": "i8", "country": "NL"})}
    >>> spine = pa.table({"member_id": ["m1", "m1", "m1"], "item_id": ["i7", "i8", None],
    ...                   "at": [2_000, 2_000, 2_000]})
    >>> out = build(features, sources, spine, entities={"member": "member_id", "item": "item_id"})
    >>> out.select(["item_id", "item_country", "same_country"]).to_pylist()
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'item_id': 'i7', 'item_country': 'PT', 'same_country': True},
     {'item_id': 'i8', 'item_country': 'NL', 'same_country': False},
     {'item_id': None, 'item_country': '??', 'same_country': False}]
    """
    if entities is None:
        return _build(
            feature_set, sources, spine, {_entity(feature_set, entity): "entity"}, report=report
        )
    if entity is not None:
        raise BuildError(
            "give build(...) either entity= (a spine with an 'entity' column) or entities= "
            "(one id column per entity), not both"
        )
    if not entities:
        raise BuildError("build(..., entities=) needs at least one {entity name: spine column}")
    for name in entities:
        _entity(feature_set, name)
    return _build(feature_set, sources, spine, entities, related=True, report=report)


def _build(
    feature_set: FeatureSet,
    sources: Mapping[str, pa.Table],
    spine: pa.Table,
    entities: Mapping[str, str],
    *,
    related: bool = False,
    report: BuildReport | None = None,
) -> pa.Table:
    """`build` of a spine whose column `entities[name]` holds the ids of entity `name`."""
    groups = [g for g in feature_set.aggregations if g.entity.name in entities]
    tables = [t for t in feature_set.tables if t.entity.name in entities]
    derived = derived_order(feature_set, groups, tables)
    order = _order(feature_set, groups, tables, derived)
    _check_spine(spine, order, entities if related else None)
    values: dict[str, pa.ChunkedArray] = {}
    for name, column in entities.items():
        # each entity on its own, its id column as the spine's entity; then derived
        # features, which may read the features of several
        own = pa.table({"entity": spine.column(column), "at": spine.column("at")})
        values |= _features(
            [g for g in groups if g.entity.name == name],
            [t for t in tables if t.entity.name == name],
            sources,
            own,
            report,
        )
    for name, array in run_derived(derived, values, spine.num_rows, report).items():
        values[name] = array
    out = spine
    for name in order:
        out = out.append_column(name, values[name])
    return out.combine_chunks()


def _order(
    feature_set: FeatureSet, groups: list[Aggregations], tables: list[Table], derived: list[Derived]
) -> list[str]:
    """The names of the features of `groups`, `tables` and `derived`, in declaration order."""
    names = {f.name for g in groups for f in g.features} | {
        f.name for t in tables for f in t.features
    }
    names |= {d.name for d in derived}
    return [n for n in feature_set.names() if n in names]


def _features(
    groups: list[Aggregations],
    tables: list[Table],
    sources: Mapping[str, pa.Table],
    spine: pa.Table,
    report: BuildReport | None = None,
) -> dict[str, pa.ChunkedArray]:
    """The aggregation and table features of the spine's (entity, at) rows, defaults filled in."""
    columns = _query(groups, tables, sources, spine)
    defaults = {f.name: f.default for g in groups for f in g.features}
    defaults |= {f.name: f.default for t in tables for f in t.features}
    if report is not None:  # a null is a row nothing was known for: it gets the default
        report.defaulted |= {name: columns[name].null_count for name in defaults}
    return {
        name: canonical(with_default(columns[name], name, default))
        for name, default in defaults.items()
    }


def _entity(feature_set: FeatureSet, entity: str | None) -> str:
    declared = [g.entity.name for g in feature_set.aggregations]
    declared += [t.entity.name for t in feature_set.tables]
    known = list(dict.fromkeys(declared))
    if entity is not None:
        if entity not in known:
            raise BuildError(f"no feature describes entity {entity!r}; declared are {known}")
        return entity
    if len(known) != 1:
        raise BuildError(
            f"the features describe {len(known)} entities ({', '.join(known) or 'none'}); "
            "say which one the spine holds with build(..., entity=NAME)"
        )
    return known[0]


def _check_spine(
    spine: pa.Table, features: list[str], ids: Mapping[str, str] | None = None
) -> None:
    """Refuse a spine without its id columns (`ids`: entity -> column; None: ``entity``)."""
    needed = ["entity", "at"] if ids is None else [*ids.values(), "at"]
    missing = [c for c in needed if c not in spine.column_names]
    if missing and ids is None:
        raise BuildError(
            f"the spine needs columns 'entity' and 'at' (epoch ms); it has {spine.column_names}"
        )
    if missing:
        raise BuildError(
            f"the spine needs an id column per entity ({dict(ids or {})}) and 'at' (epoch ms); "
            f"it lacks {missing} (it has {spine.column_names})"
        )
    clash = [n for n in features if n in spine.column_names]
    if clash:
        raise BuildError(f"spine columns {clash} have the names of features; rename them")
    at = spine.schema.field("at").type
    if not pa.types.is_integer(at):
        raise BuildError(f"spine column 'at' must hold epoch milliseconds (integers), not {at}")
    if spine.column("at").null_count:
        raise BuildError("spine column 'at' has nulls; every row needs an instant")


def _query(
    groups: list[Aggregations],
    tables: list[Table],
    sources: Mapping[str, pa.Table],
    spine: pa.Table,
) -> dict[str, pa.ChunkedArray]:
    """Every aggregation and table feature, one value per spine row in its order (null:
    missing): differences of running sums in numpy, the rest in DuckDB."""
    keys = SpineKeys.of(spine)
    out: dict[str, pa.ChunkedArray] = {}
    plans: list[tuple[GroupPlan, pa.Table]] = []
    for i, group in enumerate(groups):
        source = _source(sources, group.source, group)
        check_types(group, source)
        scales = exact_scales(group, source)
        entity = entity_column(source, group.key_field)
        time = time_column(source, group.time)
        records = Records.of(source, entity, time, lateness=int(group.lateness), keys=keys)
        direct = [f for f in group.features if by_difference(f, scales)]
        if direct:
            running = Running(Measures(source, records, scales), keys)
            for f in direct:
                where = f.name if f.where is not None else None
                out[f.name] = pa.chunked_array([f.difference(running, where)])
        rest = [f for f in group.features if not by_difference(f, scales)]
        if rest:
            plan = GroupPlan(group, rest, f"__group_{i}", scales)
            plans.append((plan, records.table(source, entity, time, plan.columns())))
    if plans or tables:
        with duckdb.connect() as con:
            result = _sql(con, plans, tables, sources, spine)
        out |= {name: result.column(name) for name in result.column_names}
    return out


def _sql(
    con: duckdb.DuckDBPyConnection,
    plans: list[tuple[GroupPlan, pa.Table]],
    tables: list[Table],
    sources: Mapping[str, pa.Table],
    spine: pa.Table,
) -> pa.Table:
    """The features of `plans` (each with its group's records) and `tables`, one row per
    spine row in its order (NULL: missing)."""
    rows = pa.table(
        {
            "__row": pa.array(np.arange(spine.num_rows, dtype=np.int64)),
            "entity": spine.column("entity").cast(pa.string()),
            "at": spine.column("at").cast(pa.int64()),
        }
    )
    con.register("__spine", rows)
    windows = {w for plan, _ in plans for w in plan.windows()}
    starts = "".join(
        f", {start_sql(w)} AS {quote(start_column(w))}" for w in sorted(windows, key=str)
    )
    # Spine rows of one entity at one instant share their features: compute them once.
    con.execute(
        f"CREATE TEMP TABLE __keys AS SELECT row_number() OVER () AS __key, "
        f'entity, "at"{starts} FROM (SELECT DISTINCT entity, "at" FROM __spine '
        "WHERE entity IS NOT NULL)"
    )
    parts: list[tuple[str, list[str]]] = []
    for plan, records in plans:
        con.register(f"{plan.name}_e", records)
        for statement in plan.statements("__keys"):
            con.execute(statement)
        parts.append((plan.name, list(plan.expressions)))
    for i, table in enumerate(tables):
        source = _source(sources, table.source, table)
        check_columns(table, source)
        con.register(f"__table_source_{i}", source)
        sql = table_sql(table, f"__table_source_{i}", source, "__keys")
        con.execute(f"CREATE TEMP TABLE __table_{i} AS {sql}")
        parts.append((f"__table_{i}", [f.name for f in table.features]))
    selected = ", ".join(f"{p}.{quote(n)}" for p, names in parts for n in names)
    joins = "".join(f" LEFT JOIN {p} ON {p}.__key = k.__key" for p, _ in parts)
    result = con.sql(
        f"SELECT {selected} FROM __spine s "
        f'LEFT JOIN __keys k ON k.entity = s.entity AND k."at" = s."at"{joins} ORDER BY s.__row'
    ).to_arrow_table()
    for plan, _ in plans:
        result = plan.finish(result)
    return result


def _source(sources: Mapping[str, pa.Table], name: str, reader: Aggregations | Table) -> pa.Table:
    try:
        return sources[name]
    except KeyError:
        raise BuildError(
            f"no table for topic {name!r}, which {type(reader).__name__.lower()} of "
            f"{reader.entity.name!r} read; pass sources={{{name!r}: events_table(...)}}"
        ) from None
