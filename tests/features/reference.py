"""A brute-force reference of docs/decisions/0008: slow, obvious, and the oracle for both
the online processor and the offline builder.

An `Event` is one record of a feature source as the log holds it. `value_at`
answers "the value of aggregate F of entity E at instant T" by reading every
event, exactly as the decision defines it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from loopline.features import Aggregation, Aggregations, Window
from loopline.features.aggregations import KINDS


def aggregate(
    name: str,
    kind: str,
    field: str | None,
    window: Window,
    where: Any = None,
    default: Any = None,
) -> Aggregation:
    """The built-in aggregation `kind` of `field` (ignored by count), default None."""
    options = {"window": window, "name": name, "where": where, "default": default}
    if kind == "count":
        return KINDS[kind](**options)
    return KINDS[kind](field, **options)


NUMBER_KINDS = [k for k in KINDS if k != "most_frequent"]
"""The kinds the tests apply to the number field ``v``: most_frequent reads strings (a number
there makes the record unusable), so it reads ``tag``, with min, max, last and distinct."""


def untagged_x(fields: dict[str, Any]) -> bool:
    return fields.get("tag") != "x"


def aggregates(prefix: str, windows: list[str], default: Any) -> list[Aggregation]:
    """Every kind over each of `windows` (on ``v``; count of records), with and without the
    filter `untagged_x`; the string kinds over ``tag`` for 10m and 24h."""
    out = []
    for kind in NUMBER_KINDS:
        field = None if kind == "count" else "v"
        for w in windows:
            window = Window.parse(w)
            out.append(aggregate(f"{prefix}{kind}_{w}", kind, field, window, None, default))
            out.append(aggregate(f"{prefix}{kind}_f_{w}", kind, field, window, untagged_x, default))
    for kind in ("min", "max", "last", "distinct", "most_frequent"):
        for w in ("10m", "24h"):
            out.append(aggregate(f"{prefix}{kind}_tag_{w}", kind, "tag", Window.parse(w)))
    return out


@dataclass(frozen=True)
class Event:
    partition: int
    offset: int
    arrival: int  # the log timestamp, ms
    event_time: int  # the declared time field (or the arrival), ms
    entity: str
    fields: dict[str, Any]


def late_positions(events: list[Event], lateness: int) -> set[tuple[int, int]]:
    """(partition, offset) of every late event: behind its partition's watermark by more
    than `lateness`, the watermark being the largest event time earlier in the partition."""
    late = set()
    watermark: dict[int, int] = {}
    for e in sorted(events, key=lambda e: (e.partition, e.offset)):
        mark = watermark.get(e.partition)
        if mark is not None and e.event_time < mark - lateness:
            late.add((e.partition, e.offset))
        watermark[e.partition] = e.event_time if mark is None else max(mark, e.event_time)
    return late


def value_at(events: list[Event], group: Aggregations, feature: Aggregation, entity: str, at: int):
    """The value of `feature` of `entity` at instant `at` (its default when there is none)."""
    late = late_positions(events, int(group.lateness))
    start = feature.window.start(at)
    chosen = [
        e
        for e in events
        if e.entity == entity
        and e.arrival <= at
        and (e.partition, e.offset) not in late
        and e.event_time < at
        and (start is None or e.event_time >= start)
        and (feature.where is None or feature.where(e.fields))
    ]
    if feature.kind == "count":
        return len(chosen) if chosen else feature.default
    values = [e.fields.get(feature.field) for e in chosen]
    pairs = [(e, v) for e, v in zip(chosen, values, strict=True) if v is not None]
    if not pairs:
        return feature.default
    numbers = [v for _, v in pairs]
    if feature.kind == "sum":
        return math.fsum(numbers)
    if feature.kind == "mean":
        return math.fsum(numbers) / len(numbers)
    if feature.kind == "min":
        return min(numbers)
    if feature.kind == "max":
        return max(numbers)
    if feature.kind == "last":
        _, v = max(pairs, key=lambda p: (p[0].event_time, p[0].partition, p[0].offset))
        return v
    if feature.kind == "distinct":
        return len(set(numbers))
    if feature.kind == "most_frequent":
        return min(set(numbers), key=lambda v: (-numbers.count(v), v))
    raise AssertionError(feature.kind)
