"""mean: the sum of a field over the number of its values in the window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.features.aggregations.base import Differences, fsum_lists
from loopline.features.aggregations.sum import Sum, SumState

if TYPE_CHECKING:
    import pyarrow as pa


class Mean(Sum):
    """`math.fsum(values) / len(values)`, from the same exact tile states as `Sum`.

    >>> mean = Mean("seconds", window="24h")
    >>> state = mean.empty()
    >>> for x in [1.0, 2.0, 4.5]:
    ...     state = mean.add(state, x, 0, (0, 0))
    >>> mean.result(state)
    2.5
    >>> mean.result(mean.empty()) is None
    True
    """

    kind = "mean"
    missing = None

    def result(self, state: SumState) -> float | None:
        return self.total(state) / state[0] if state[0] else None

    def finish(self, values: list[Any]) -> pa.Array:
        import pyarrow as pa

        return pa.array(fsum_lists(values, mean=True), pa.float64())

    def difference(self, sums: Differences, where: str | None) -> pa.Array:
        return sums.mean(self.field or "", where, self.window)
