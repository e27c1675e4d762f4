"""min: the smallest value of a field in the window."""

from __future__ import annotations

from typing import Any

from loopline.features.online.aggregators.base import Aggregator, Position


class Minimum(Aggregator[Any]):
    """Smallest value; the state is that value (None before any).

    >>> smallest = Minimum()
    >>> state = smallest.empty()
    >>> for x in [3, -1.5, 7]:
    ...     state = smallest.add(state, x, 0, (0, 0))
    >>> smallest.result(smallest.merge(state, smallest.add(smallest.empty(), -2, 0, (0, 1))))
    -2
    """

    kind = "min"

    def empty(self) -> Any:
        return None

    def add(self, state: Any, value: Any, event_time: int, position: Position) -> Any:
        return value if state is None or value < state else state

    def merge(self, a: Any, b: Any) -> Any:
        return a if b is None else self.add(a, b, 0, (0, 0))

    def result(self, state: Any) -> Any:
        return state
