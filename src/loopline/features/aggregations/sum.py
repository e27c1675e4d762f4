"""sum: the exact (math.fsum) sum of a field in the window."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopline.features.aggregations.base import (
    NUMBERS,
    Aggregation,
    Differences,
    Position,
    filtered,
    fsum_lists,
)

if TYPE_CHECKING:
    import pyarrow as pa

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


def _read_only(data: Any) -> tuple[Any, ...]:
    """A dumped sum state as an online store's reads keep it (they only read it)."""
    return (data[0], data[1], tuple(data[2]))


class Sum(Aggregation[SumState]):
    """Sum of the values, equal to `math.fsum` of them however they are split into tiles.

    Each tile keeps the exact sum as a short list of partials, so merging tiles
    loses nothing and the result is the correctly rounded sum, as math.fsum's.
    Infinities and NaN are summed apart (inf stays inf; inf - inf is nan).
    Offline, fields whose values share an exact fixed point are differences of
    running sums; others are gathered per key and summed by `math.fsum`.

    >>> total = Sum("amount", window="1h")
    >>> state = total.empty()
    >>> for x in [1e16, 1.0, -1e16]:
    ...     state = total.add(state, x, 0, (0, 0))
    >>> total.result(state)  # a running float sum would say 0.0
    1.0
    >>> total.dump(state)
    [3, 0.0, [1.0]]
    >>> total.usable("5.5")  # numbers only: a numeric string is not one
    False
    """

    kind = "sum"
    loads_copy = True
    types = NUMBERS
    accepts = "a number (int or float)"
    missing = 0.0
    summed = True

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

    def result_of(self, states: Sequence[SumState]) -> float | None:
        # Every tile's partials at once: math.fsum of them all is the correctly rounded exact
        # sum, as the merged state's would be, without a Python loop per partial.
        count, nonfinite = 0, 0.0
        for state in states:
            count += state[0]
            nonfinite += state[1]
        merged = [count, nonfinite, [x for state in states for x in state[2]]]
        try:
            return self.result(merged)
        except OverflowError:  # partials that overflow only when summed unmerged: merge them
            return super().result_of(states)

    def load(self, data: Any) -> SumState:
        return [data[0], data[1], list(data[2])]

    def view_load(self) -> Callable[[Any], Any]:
        # Tuples of numbers, which the cyclic collector stops tracking after its next young
        # pass: an online store keeps a state per tile of every entity it has read, and lists
        # would be walked again on each middle pass (the tail of first reads).
        return _read_only

    def state_key(self) -> tuple[Any, ...]:
        # a mean keeps a sum's states: one of each over one field and window share them
        kind = type(self)
        methods = (kind.empty, kind.add, kind.merge, kind.dump, kind.load)
        return (*methods, self.field, self.window, self.where)

    def sql(self, value: str, passes: str | None) -> str:
        return filtered(f"list({value}::DOUBLE)", passes, f"{value} IS NOT NULL")

    def finish(self, values: list[Any]) -> pa.Array:
        import pyarrow as pa

        return pa.array(fsum_lists(values), pa.float64())

    def by_difference(self, scales: Mapping[str, int | None]) -> bool:
        return scales.get(self.field or "") is not None

    def difference(self, sums: Differences, where: str | None) -> pa.Array:
        return sums.total(self.field or "", where, self.window)
