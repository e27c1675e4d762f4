"""distinct: the number of distinct values of a field in the window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopline.features.aggregations.base import Aggregation, LifetimePlan, Position, filtered


class Distinct(Aggregation[set[Any]]):
    """Number of distinct values, which must be scalars (str, int, float, bool).

    The state is the set of values; it is dumped as a list. Offline, a
    lifetime count is the number of values first ready by the instant.

    >>> distinct = Distinct("viewer_id", window="7d")
    >>> state = distinct.empty()
    >>> for viewer in ["ann", "bob", "ann"]:
    ...     state = distinct.add(state, viewer, 0, (0, 0))
    >>> distinct.result(state), sorted(distinct.dump(state))
    (2, ['ann', 'bob'])
    >>> distinct.usable(["ann", "bob"])  # a list is no scalar
    False
    """

    kind = "distinct"
    types = (str, int, float, bool)
    accepts = "a scalar (str, int, float or bool)"
    missing = 0

    def empty(self) -> set[Any]:
        return set()

    def add(self, state: set[Any], value: Any, event_time: int, position: Position) -> set[Any]:
        state.add(value)
        return state

    def merge(self, a: set[Any], b: set[Any]) -> set[Any]:
        a |= b
        return a

    def result(self, state: set[Any]) -> int | None:
        return len(state) or None

    def result_of(self, states: Sequence[set[Any]]) -> int | None:
        return len(set().union(*states)) or None

    def dump(self, state: set[Any]) -> list[Any]:
        return list(state)

    def load(self, data: Any) -> set[Any]:
        return set(data)

    def sql(self, value: str, passes: str | None) -> str:
        return f"NULLIF({filtered(f'count(DISTINCT {value})', passes)}, 0)"

    def lifetime_sql(self, plan: LifetimePlan, value: str, passes: str | None) -> str | None:
        return plan.first_ready(value, passes)
