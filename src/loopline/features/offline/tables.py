"""The SQL of one `Table` at every spine instant (docs/decisions/0008).

A table feature at `T` is the field of the entity's latest record by position
among those known at `T` (``arrival <= T``); missing when that record is a
tombstone. Positions and arrivals need not agree across partitions, so the
query first computes, for each arrival instant of an entity, the latest
position known by then (a running maximum in arrival order), and then finds
each spine key's snapshot with an ASOF join on arrival.
"""

from __future__ import annotations

import pyarrow as pa

from loopline.features.declarations import Table
from loopline.features.offline.events import BuildError, entity_column, field_column
from loopline.features.offline.sql import quote


def check_columns(table: Table, source: pa.Table) -> None:
    """Refuse a source table missing a column the features read."""
    needed = ["deleted", *(field_column(f.field) for f in table.features)]
    missing = [c for c in needed if c not in source.column_names]
    if missing:
        raise BuildError(
            f"the table of topic {table.source!r} has no column {', '.join(map(repr, missing))}; "
            "build it with events_table"
        )


def table_sql(table: Table, name: str, source: pa.Table, keys: str) -> str:
    """One row per key of `keys`: ``__key`` and every feature of `table` (NULL: missing),
    from `source` registered as `name`."""
    entity = quote(entity_column(source, table.key_field))
    fields = ",\n           ".join(
        f"CASE WHEN r.deleted THEN NULL ELSE r.{quote(field_column(f.field))} END "
        f"AS {quote(f.name)}"
        for f in table.features
    )
    names = ", ".join(f"s.{quote(f.name)}" for f in table.features)
    values = ", ".join(dict.fromkeys(quote(field_column(f.field)) for f in table.features))
    return f"""
WITH r AS (
    SELECT partition, "offset", arrival, {entity} AS entity, deleted, {values}
    FROM {quote(name)}
    WHERE {entity} IN (SELECT entity FROM {keys})
), latest AS (
    SELECT DISTINCT entity, arrival,
           max({{'p': partition, 'o': "offset"}}) OVER (
               PARTITION BY entity ORDER BY arrival
               RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           ) AS position
    FROM r
), snapshot AS (
    SELECT latest.entity, latest.arrival,
           {fields}
    FROM latest JOIN r ON r.partition = latest.position.p AND r."offset" = latest.position.o
)
SELECT k.__key, {names}
FROM {keys} k ASOF JOIN snapshot s ON k.entity = s.entity AND s.arrival <= k."at"
"""
