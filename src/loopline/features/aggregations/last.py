"""last: the value of the record with the greatest event time in the window."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from loopline.features.aggregations.base import Aggregation, LifetimePlan, Position, filtered

LastState = list[Any] | None
"""[event_time, partition, offset, value] of the latest record so far, or None."""
_position = operator.itemgetter(0, 1, 2)  # (event_time, partition, offset) of a state
POSITION = "{'t': event_time, 'p': partition, 'o': \"offset\"}"  # what `last` maximises in SQL


class Last(Aggregation[LastState]):
    """Value with the greatest event time; ties go to the greater (partition, offset).

    The state is never changed in place, so a merged state may share a tile's list.

    >>> last = Last("page")
    >>> state = last.add(last.empty(), "b", 2_000, (0, 1))
    >>> state = last.add(state, "a", 1_000, (0, 2))  # arrived later, happened earlier
    >>> last.result(state)
    'b'
    >>> last.result(last.add(state, "c", 2_000, (0, 3)))  # same time, later position
    'c'
    """

    kind = "last"
    loads_copy = True

    def empty(self) -> LastState:
        return None

    def add(self, state: LastState, value: Any, event_time: int, position: Position) -> LastState:
        if state is None or (event_time, *position) > (state[0], state[1], state[2]):
            return [event_time, position[0], position[1], value]
        return state

    def merge(self, a: LastState, b: LastState) -> LastState:
        return a if b is None else self.add(a, b[3], b[0], (b[1], b[2]))

    def result(self, state: LastState) -> Any:
        return None if state is None else state[3]

    def result_of(self, states: Sequence[LastState]) -> Any:
        latest = max((s for s in states if s is not None), key=_position, default=None)
        return None if latest is None else latest[3]

    def load(self, data: Any) -> LastState:
        return None if data is None else list(data)

    def sql(self, value: str, passes: str | None) -> str:
        return filtered(f"arg_max({value}, {POSITION})", passes, f"{value} IS NOT NULL")

    def lifetime_sql(self, plan: LifetimePlan, value: str, passes: str | None) -> str | None:
        return plan.running(self.sql(value, passes))
