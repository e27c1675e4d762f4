"""Reads of one entity's state, laid out once so that each read does little.

`EntityState.read` is the reference: per feature, it walks the tiles, keeps
those in the window and folds them with `merge`. A serving process reads the
same state many times between two changes, and the features of a group share
most of that work: features over one window hold tiles at the same starts (a
count, a sum and a mean of one field over 1h see the same records). So
`TileReader` lays a state out once, after each change:

- the features are put in *blocks*: one per window and set of tile starts,
  the starts sorted, each feature's tile states in the same order;
- a read finds each block's tiles in its window with two bisections (`lo`,
  `hi`), and every feature of the block takes the tiles ``lo:hi``;
- each feature's value is its kind's `Aggregation.result_of` of those tiles
  (one `math.fsum` of every partial for a sum, one `min` for a minimum),
  kept per block for its (`lo`, `hi`), so reading again in the same tile is
  a look-up, and an empty window is the block's defaults.

Values equal the reference's (`==`; between equal values, such as ``0.0``
and ``-0.0``, a minimum may keep the other one). A state with records still
pending (event times at or after its clock) in the window reads through the
reference. docs/decisions/0033 has the figures.

>>> from loopline.features import Aggregations, Entity
>>> from loopline.features.aggregations import Count, Sum
>>> from loopline.features.online.state import EntityState, Plan
>>> plan = Plan(Aggregations("orders", Entity("member", "member_id"), [
...     Count(window="1h", name="orders_1h"), Sum("amount", window="1h", name="spent_1h")]))
>>> state = EntityState(plan)
>>> for offset, (t, amount) in enumerate([(1_000, 5.0), (61_000, 2.5), (3_000_000, 1.0)]):
...     state.add(t, {"amount": amount}, (0, offset), clock=3_100_000)
>>> reader = TileReader(state)
>>> reader.read(3_600_000) == state.read(3_600_000) == {"orders_1h": 2, "spent_1h": 3.5}
True
>>> reader.read(7_000_000)  # the window has passed every tile: the defaults
{'orders_1h': 0, 'spent_1h': 0.0}
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from loopline.features.aggregations import Aggregation
from loopline.features.online.state import EntityState
from loopline.features.windows import Window


class Block:
    """Features of one window whose tiles start at the same instants, sorted."""

    __slots__ = ("aggs", "cached", "defaults", "names", "starts", "states", "window")

    def __init__(self, window: Window, starts: list[int]) -> None:
        self.window = window
        self.starts = starts
        self.names: list[str] = []
        self.aggs: list[Aggregation[Any]] = []
        self.states: list[list[Any]] = []  # per feature, its tile states in `starts` order
        self.defaults: list[Any] = []
        self.cached: tuple[int, int, list[Any]] | None = None  # (lo, hi, values) last read

    def values(self, lo: int, hi: int) -> list[Any]:
        """Every feature's value over the tiles ``lo:hi`` (empty: the defaults)."""
        if lo >= hi:
            return self.defaults
        cached = self.cached
        if cached is not None and cached[0] == lo and cached[1] == hi:
            return cached[2]
        out = []
        whole = lo == 0 and hi == len(self.starts)
        for agg, states, default in zip(self.aggs, self.states, self.defaults, strict=True):
            result = agg.result_of(states if whole else states[lo:hi])
            out.append(default if result is None else result)
        self.cached = (lo, hi, out)
        return out


class TileReader:
    """An `EntityState` laid out for reads (the module docstring says how).

    It reads the state as it was when laid out: whoever changes the state
    makes a new reader (`OnlineFeatures` drops its readers on every change).
    """

    __slots__ = ("blocks", "pending", "state", "template")

    def __init__(self, state: EntityState) -> None:
        plan = state.plan
        self.state = state
        # the first event time of a pending record (None: none pending)
        self.pending: int | None = state.pending[0][0] if state.pending else None
        self.template = dict.fromkeys(agg.name for agg in plan.slots)  # the reference's order
        # per (window, tile starts in insertion order): the block, and the starts to take
        # the states in (None: insertion order is already sorted)
        blocks: dict[tuple[Window, tuple[int, ...]], tuple[Block, list[int] | None]] = {}
        for agg, tiles in zip(plan.slots, state.tiles, strict=True):
            key = (agg.window, tuple(tiles))
            found = blocks.get(key)
            if found is None:
                starts = sorted(key[1])
                found = blocks[key] = (Block(agg.window, starts), None)
                if starts != list(key[1]):
                    found = blocks[key] = (found[0], starts)
            block, order = found
            block.names.append(agg.name)
            block.aggs.append(agg)
            block.defaults.append(agg.default)
            block.states.append(
                list(tiles.values()) if order is None else [tiles[t] for t in order]
            )
        self.blocks = [block for block, _ in blocks.values()]

    def read(self, at: int) -> dict[str, Any]:
        """Every feature's value at `at`, equal to `EntityState.read(at)` of the state."""
        if self.pending is not None and self.pending < at:
            return self.state.read(at)  # records pending in the window: the reference adds them
        out = self.template.copy()
        for block in self.blocks:
            starts = block.starts
            if not starts:
                out.update(zip(block.names, block.defaults, strict=True))
                continue
            start = block.window.start(at)
            if start is None:  # lifetime: every tile, as the reference reads them
                lo, hi = 0, len(starts)
            else:
                lo = bisect_left(starts, start)
                hi = len(starts) if starts[-1] < at else bisect_left(starts, at, lo)
            out.update(zip(block.names, block.values(lo, hi), strict=True))
        return out
