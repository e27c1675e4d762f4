"""mean: the sum of a field over the number of its values in the window."""

from __future__ import annotations

from loopline.features.online.aggregators.sum import Sum, SumState


class Mean(Sum):
    """`math.fsum(values) / len(values)`, from the same exact tile states as `Sum`.

    >>> mean = Mean()
    >>> state = mean.empty()
    >>> for x in [1.0, 2.0, 4.5]:
    ...     state = mean.add(state, x, 0, (0, 0))
    >>> mean.result(state)
    2.5
    >>> mean.result(mean.empty()) is None
    True
    """

    kind = "mean"

    def result(self, state: SumState) -> float | None:
        return self.total(state) / state[0] if state[0] else None
