"""count: the number of records in the window."""

from __future__ import annotations

from typing import Any

from loopline.features.online.aggregators.base import Aggregator, Position


class Count(Aggregator[int]):
    """Number of records (that pass the feature's filter), whatever their value.

    >>> count = Count()
    >>> state = count.empty()
    >>> for offset, value in enumerate([3.5, None, "a"]):
    ...     state = count.add(state, value, 1_000, (0, offset))
    >>> count.result(state)
    3
    """

    kind = "count"

    def empty(self) -> int:
        return 0

    def add(self, state: int, value: Any, event_time: int, position: Position) -> int:
        return state + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, state: int) -> int | None:
        return state or None
