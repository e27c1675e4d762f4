"""min: the smallest value of a field in the window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopline.features.aggregations.base import Aggregation, LifetimePlan, Position, filtered


class Min(Aggregation[Any]):
    """Smallest value; the state is that value (None before any).

    Values are numbers or strings; should one field hold both, every number
    comes before every string (so a stray string never stops the processor;
    offline such a field is refused, naming it). Offline, a lifetime minimum is
    a running minimum in ready order.

    >>> smallest = Min("seconds", window="1h")
    >>> state = smallest.empty()
    >>> for x in [3, -1.5, 7]:
    ...     state = smallest.add(state, x, 0, (0, 0))
    >>> smallest.result(smallest.merge(state, smallest.add(smallest.empty(), -2, 0, (0, 1))))
    -2
    """

    kind = "min"
    types = (int, float, str)
    accepts = "a number or a string"

    def empty(self) -> Any:
        return None

    def add(self, state: Any, value: Any, event_time: int, position: Position) -> Any:
        if state is None:
            return value
        try:
            return value if value < state else state
        except TypeError:  # a number and a string: every number comes first
            return state if isinstance(value, str) else value

    def merge(self, a: Any, b: Any) -> Any:
        return a if b is None else self.add(a, b, 0, (0, 0))

    def result(self, state: Any) -> Any:
        return state

    def result_of(self, states: Sequence[Any]) -> Any:
        try:  # the first of equal values, as the fold keeps
            return min((s for s in states if s is not None), default=None)
        except TypeError:  # numbers and strings together: the fold orders them
            return super().result_of(states)

    def sql(self, value: str, passes: str | None) -> str:
        return filtered(f"min({value})", passes)

    def lifetime_sql(self, plan: LifetimePlan, value: str, passes: str | None) -> str | None:
        return plan.running(self.sql(value, passes))
