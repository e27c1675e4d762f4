"""max: the largest value of a field in the window."""

from __future__ import annotations

from typing import Any

from loopline.features.online.aggregators.base import Aggregator, Position


class Maximum(Aggregator[Any]):
    """Largest value; the state is that value (None before any).

    >>> largest = Maximum()
    >>> state = largest.empty()
    >>> for x in [3, -1.5, 7]:
    ...     state = largest.add(state, x, 0, (0, 0))
    >>> largest.result(largest.merge(state, largest.add(largest.empty(), 5, 0, (0, 1))))
    7
    """

    kind = "max"

    def empty(self) -> Any:
        return None

    def add(self, state: Any, value: Any, event_time: int, position: Position) -> Any:
        return value if state is None or value > state else state

    def merge(self, a: Any, b: Any) -> Any:
        return a if b is None else self.add(a, b, 0, (0, 0))

    def result(self, state: Any) -> Any:
        return state
