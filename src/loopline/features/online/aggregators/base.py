"""The protocol every aggregation follows: a mergeable state per tile.

An aggregator holds no data. A *state* is plain data (numbers, strings,
lists) that the aggregator creates with `empty`, grows with `add`, combines
with `merge` and reads with `result`. The online processor keeps one state
per tile of a window and merges the tiles a read needs, so every kind of
0008 (count, sum, mean, min, max, last, distinct) is one small file that
implements these four methods, and nothing else changes when a kind is added.

`add` and `merge` may change their first argument and return it; they never
change the second. `dump` and `load` turn a state into JSON/msgpack-ready
data and back (the identity unless the state holds something like a set).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

S = TypeVar("S")
Position = tuple[int, int]
"""Where a record sits in the log: (partition, offset)."""


class Aggregator(ABC, Generic[S]):
    """One aggregation kind, as the four operations a tiled window needs.

    >>> from loopline.features.online.aggregators import AGGREGATORS
    >>> count = AGGREGATORS["count"]
    >>> first_tile = count.add(count.empty(), None, 1_000, (0, 7))
    >>> second_tile = count.add(count.empty(), None, 61_000, (0, 8))
    >>> count.result(count.merge(first_tile, second_tile))
    2
    >>> count.result(count.empty()) is None  # no value: the feature's default applies
    True
    """

    kind: ClassVar[str]

    @abstractmethod
    def empty(self) -> S:
        """A fresh state that has seen nothing."""

    @abstractmethod
    def add(self, state: S, value: Any, event_time: int, position: Position) -> S:
        """`state` after one more record (`value` is never None, except for count)."""

    @abstractmethod
    def merge(self, a: S, b: S) -> S:
        """The state of the records of `a` and of `b` together."""

    @abstractmethod
    def result(self, state: S) -> Any | None:
        """The feature value of `state`; None when there is none (the default applies)."""

    def dump(self, state: S) -> Any:
        """`state` as plain data (lists, numbers, strings) for a changelog."""
        return state

    def load(self, data: Any) -> S:
        """The state that `dump` turned into `data`."""
        return data
