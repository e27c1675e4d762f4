"""sum: the exact (math.fsum) sum of a field in the window."""

from __future__ import annotations

import math
from typing import Any

from loopline.features.online.aggregators.base import Aggregator, Position

SumState = list[Any]
"""[count, non-finite total, partials]: partials are Shewchuk's non-overlapping floats,
whose exact sum is the exact sum of every finite value added."""


def grow(partials: list[float], x: float) -> None:
    """Add `x` to `partials` in place without rounding (the algorithm inside math.fsum).

    Reference: J. R. Shewchuk, "Adaptive Precision Floating-Point Arithmetic and
    Fast Robust Geometric Predicates", 1997; Python's `msum` recipe.
    """
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x] if x or not i else []


class Sum(Aggregator[SumState]):
    """Sum of the values, equal to `math.fsum` of them however they are split into tiles.

    Each tile keeps the exact sum as a short list of partials, so merging tiles
    loses nothing and the result is the correctly rounded sum, as math.fsum's.
    Infinities and NaN are summed apart (inf stays inf; inf - inf is nan).

    >>> total = Sum()
    >>> state = total.empty()
    >>> for x in [1e16, 1.0, -1e16]:
    ...     state = total.add(state, x, 0, (0, 0))
    >>> total.result(state)  # a running float sum would say 0.0
    1.0
    >>> total.dump(state)
    [3, 0.0, [1.0]]
    """

    kind = "sum"

    def empty(self) -> SumState:
        return [0, 0.0, []]

    def add(self, state: SumState, value: Any, event_time: int, position: Position) -> SumState:
        x = float(value)
        state[0] += 1
        if math.isfinite(x):
            grow(state[2], x)
        else:
            state[1] += x
        return state

    def merge(self, a: SumState, b: SumState) -> SumState:
        a[0] += b[0]
        a[1] += b[1]
        for x in b[2]:
            grow(a[2], x)
        return a

    def total(self, state: SumState) -> float:
        exact = math.fsum(state[2])
        return exact + state[1] if state[1] else exact

    def result(self, state: SumState) -> float | None:
        return self.total(state) if state[0] else None

    def load(self, data: Any) -> SumState:
        return [data[0], data[1], list(data[2])]
