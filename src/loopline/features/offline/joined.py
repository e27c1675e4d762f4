"""Features read by joining each spine key with the records in its window.

For what running sums cannot give: windowed min, max, last and distinct, and
sums of fields without an exact fixed point (gathered as lists, summed by
`math.fsum` afterwards). A window of length `w` at `T` spans less than `w`, so
it meets at most two `w`-long buckets of event time: the join is an equi-join
on (entity, bucket), and a key meets only its entity's records of two windows,
not its whole history. A lifetime window joins on the entity alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopline.features.declarations import Aggregate, Window
from loopline.features.offline.events import field_column, pass_column
from loopline.features.offline.sql import filtered, floor_sql, quote, start_column

POSITION = "{'t': event_time, 'p': partition, 'o': \"offset\"}"  # what `last` maximises


def aggregate_sql(feature: Aggregate, scales: dict[str, int | None]) -> str:
    """`feature` over the joined records of a key, NULL when none counts."""
    passes = f"{quote(pass_column(feature.name))}" if feature.where else None
    if feature.kind == "count":
        return f"NULLIF({filtered('count(*)', passes)}, 0)"
    assert feature.field is not None
    value = quote(field_column(feature.field))
    present = f"{value} IS NOT NULL"
    if feature.kind in ("sum", "mean"):
        assert scales[feature.field] is None, "exactly scaled sums run as differences"
        return filtered(f"list({value}::DOUBLE)", passes, present)
    if feature.kind in ("min", "max"):
        return filtered(f"{feature.kind}({value})", passes)
    if feature.kind == "last":
        return filtered(f"arg_max({value}, {POSITION})", passes, present)
    if feature.kind == "distinct":
        return f"NULLIF({filtered(f'count(DISTINCT {value})', passes)}, 0)"
    raise AssertionError(feature.kind)


def window_sql(
    records: str,
    keys: str,
    window: Window,
    features: Sequence[Aggregate],
    scales: dict[str, int | None],
) -> str:
    """One row per key of `keys` meeting a record of `records` ready by its instant and in
    `window`: ``__key`` and each of `features`."""
    columns = "".join(f", {aggregate_sql(f, scales)} AS {quote(f.name)}" for f in features)
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
