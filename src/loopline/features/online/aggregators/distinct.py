"""distinct: the number of distinct values of a field in the window."""

from __future__ import annotations

from typing import Any

from loopline.features.online.aggregators.base import Aggregator, Position


class Distinct(Aggregator[set[Any]]):
    """Number of distinct values (which must be hashable scalars: str, int, float, bool).

    The state is the set of values; it is dumped as a list.

    >>> distinct = Distinct()
    >>> state = distinct.empty()
    >>> for viewer in ["ann", "bob", "ann"]:
    ...     state = distinct.add(state, viewer, 0, (0, 0))
    >>> distinct.result(state), sorted(distinct.dump(state))
    (2, ['ann', 'bob'])
    """

    kind = "distinct"

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

    def dump(self, state: set[Any]) -> list[Any]:
        return list(state)

    def load(self, data: Any) -> set[Any]:
        return set(data)
