"""Features read by joining each spine key with the records in its window.

For what running sums cannot give: each feature is its kind's `sql` aggregate
over the records a key joins with (windowed min, max, last and distinct, sums
of fields without an exact fixed point gathered as lists that the kind's
`finish` sums by `math.fsum`, and any kind of your own). A window of length `w` at `T` spans less than `w`, so
it meets at most two `w`-long buckets of event time: the join is an equi-join
on (entity, bucket), and a key meets only its entity's records of two windows,
not its whole history. A lifetime window joins on the entity alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopline.features.aggregations import Aggregation
from loopline.features.declarations import Window
from loopline.features.offline.events import field_column, pass_column
from loopline.features.offline.sql import floor_sql, quote, start_column


def aggregate_sql(feature: Aggregation[Any]) -> str:
    """`feature` over the joined records of a key, NULL when none counts (its kind's `sql`)."""
    passes = quote(pass_column(feature.name)) if feature.where else None
    value = quote(field_column(feature.field)) if feature.field is not None else "NULL"
    return feature.sql(value, passes)


def window_sql(
    records: str,
    keys: str,
    window: Window,
    features: Sequence[Aggregation[Any]],
) -> str:
    """One row per key of `keys` meeting a record of `records` ready by its instant and in
    `window`: ``__key`` and each of `features`."""
    columns = "".join(f", {aggregate_sql(f)} AS {quote(f.name)}" for f in features)
    if window.length is None:
        return (
            f"SELECT k.__key{columns} FROM {keys} k JOIN {records} "
            f'ON {records}.entity = k.entity AND ready <= k."at" GROUP BY k.__key'
        )
    length, start = window.length, quote(start_column(window))
    first = f"{floor_sql(start, length)} // {length}"
    last = f"{floor_sql(quote('at') + ' - 1', length)} // {length}"
    return (
        f"SELECT k.__key{columns} FROM "
        f"(SELECT __key, entity, {quote('at')}, {start}, "
        f"unnest(generate_series({first}, {last})) AS bucket FROM {keys}) k "
        f"JOIN (SELECT *, {floor_sql('event_time', length)} // {length} AS bucket "
        f"FROM {records}) e ON e.entity = k.entity AND e.bucket = k.bucket "
        f'AND e.ready <= k."at" AND e.event_time >= k.{start} GROUP BY k.__key'
    )
