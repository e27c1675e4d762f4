"""Records no feature can read: left out of the offline build as the online processor
dead-letters them, and counted (docs/decisions/0008 and 0009).

A record is unusable when it has no entity id, an unreadable event time, or a
value that a feature reads (the record passes the feature's filter) of a type
the feature's kind does not read (`Aggregation.types`, or its own `usable`):
the string ``"5.5"`` where a sum reads numbers. `unusable_mask` finds the last
kind, whole columns at a time when every value is of a type the kinds read.

>>> from loopline.features.aggregations import Sum
>>> spent = Sum("amount", window="1h")
>>> values = [{"amount": 1.5}, {"amount": "5.5"}, {}, None]
>>> unusable_mask([("amount", spent, None)], values).tolist()
[False, True, False, False]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.features.aggregations import Aggregation, Filter

UNUSABLE = b"loopline.unusable"  # schema metadata: how many records were left out
Check = tuple[str, Aggregation[Any], Filter | None]  # (field, feature, its filter)


def unusable_records(table: pa.Table) -> int:
    """How many records `events_table` left out of `table` because no feature could read
    them: no entity id, an unreadable event time, or a value of a type a feature cannot use
    (the online processor dead-letters each of them)."""
    return int((table.schema.metadata or {}).get(UNUSABLE, b"0"))


def counted(table: pa.Table, left_out: int) -> pa.Table:
    """`table` saying how many records were left out of it (`unusable_records`)."""
    return table.replace_schema_metadata({UNUSABLE: str(left_out).encode()})


def checks_itself(feature: Aggregation[Any]) -> bool:
    """Whether a kind checks values by its own `usable`, not by its `types`."""
    return type(feature).usable is not Aggregation.usable


def unusable_mask(
    checks: Sequence[Check],
    values: Sequence[Mapping[str, Any] | None],
    get: Callable[..., Any] | None = None,
    columns: dict[str, list[Any]] | None = None,
) -> np.ndarray | None:
    """Per record (a value dict, None for a tombstone), whether a feature of `checks` would
    read a value of it that it cannot use, as `Plan.read` decides online; None when none
    would. `get(value, field)` reads a field (default: ``value.get(field)``); `columns`
    keeps the field columns read here (field -> values) for reuse."""
    found: np.ndarray | None = None
    columns = {} if columns is None else columns
    types: dict[str, set[type]] = {}
    for field, feature, where in checks:
        if field not in columns:
            if get is None:
                columns[field] = [None if v is None else v.get(field) for v in values]
            else:
                columns[field] = list(map(get, values, repeat(field)))
        column = columns[field]
        if not checks_itself(feature):
            if field not in types:
                types[field] = set(map(type, column))
                types[field].discard(type(None))
            if types[field].issubset(feature.types or ()):
                continue  # every value is of a type it reads: nothing to look at
        usable = feature.usable
        bad = np.fromiter(
            (
                x is not None
                and not usable(x)
                and (where is None or (v is not None and passes_filter(where, v)))
                for x, v in zip(column, values, strict=True)
            ),
            bool,
            len(values),
        )
        found = bad if found is None else found | bad
    return found


def passes_filter(fn: Callable[[Mapping[str, Any]], bool], value: Mapping[str, Any]) -> bool:
    """Whether `value` passes filter `fn`; a filter that raises rejects it, as online."""
    try:
        return bool(fn(value))
    except Exception:
        return False
