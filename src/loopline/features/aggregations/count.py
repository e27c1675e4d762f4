"""count: the number of records in the window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopline.features.aggregations.base import Aggregation, Differences, Position, filtered

if TYPE_CHECKING:
    import pyarrow as pa


class Count(Aggregation[int]):
    """Number of records (that pass the feature's filter), whatever their values.

    Offline, a difference of running counts (`loopline.features.offline.running`).

    >>> count = Count(window="1h", name="clicks_1h")
    >>> state = count.empty()
    >>> for offset, value in enumerate([3.5, None, "a"]):
    ...     state = count.add(state, value, 1_000, (0, offset))
    >>> count.result(state)
    3
    >>> count.sql("v", None)
    'NULLIF(count(*), 0)'
    """

    kind = "count"
    missing = 0

    def __init__(self, *, window: str = "lifetime", name: str | None = None, **options: Any):
        super().__init__(None, window=window, name=name, **options)

    @classmethod
    def reads_field(cls) -> bool:
        return False

    def empty(self) -> int:
        return 0

    def add(self, state: int, value: Any, event_time: int, position: Position) -> int:
        return state + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, state: int) -> int | None:
        return state or None

    def result_of(self, states: Sequence[int]) -> int | None:
        return sum(states) or None

    def sql(self, value: str, passes: str | None) -> str:
        return f"NULLIF({filtered('count(*)', passes)}, 0)"

    def by_difference(self, scales: Mapping[str, int | None]) -> bool:
        return True

    def difference(self, sums: Differences, where: str | None) -> pa.Array:
        return sums.count(where, self.window)
