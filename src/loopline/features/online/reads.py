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
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from loopline.features.aggregations import Aggregation
from loopline.features.online.state import EntityState, Plan
from loopline.features.windows import Window

_first, _second = itemgetter(0), itemgetter(1)


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
    `from_dump` lays out a changelog entry without building the state first.
    """

    __slots__ = ("_state", "blocks", "pending", "plan", "template")

    def __init__(self, state: EntityState) -> None:
        tiles = [(list(t), list(t.values())) for t in state.tiles]
        self._state: EntityState | Mapping[str, Any] | None = state
        self.pending = self._lay_out(state.plan, tiles, state.pending)

    @classmethod
    def from_dump(cls, plan: Plan, data: Mapping[str, Any]) -> TileReader:
        """The reader of the state `EntityState.dump` gave `data` for (`data` is not copied:
        leave it unchanged)."""
        reader = cls.__new__(cls)
        tiles: list[tuple[list[int], list[Any]]] = []
        copy = bool(data["pending"])  # `_lay_out` adds pending records to each feature's lists
        for i, (loads, pairs, owner) in enumerate(
            zip(plan.view_loads, data["tiles"], plan.owners, strict=True)
        ):
            if owner != i:  # the owner's tiles (`Plan.owners`), laid out already
                starts, states = tiles[owner]
                tiles.append((list(starts), list(states)) if copy else (starts, states))
                continue
            states = list(map(_second, pairs))
            tiles.append(
                (list(map(_first, pairs)), states if loads is None else [*map(loads, states)])
            )
        # Only a reader with pending records reads through the state (`read`). Others keep
        # nothing of `data`: what a first read leaves behind, the collector walks on each of
        # its passes until they reach the oldest generation (a long tail on first reads).
        reader._state = data if data["pending"] else None
        reader.pending = reader._lay_out(plan, tiles, data["pending"])
        return reader

    def _reference(self) -> EntityState:
        """The state read, for reads that take the reference (built from the dump, which a
        reader `from_dump` keeps only when the state has pending records)."""
        if not isinstance(self._state, EntityState):
            assert self._state is not None, "only a reader with pending records reads its state"
            self._state = EntityState.load(self.plan, self._state)
        return self._state

    def _lay_out(
        self, plan: Plan, tiles: list[tuple[list[int], list[Any]]], pending: list[list[Any]]
    ) -> int | None:
        """Lay out `tiles` (per feature, starts and states) and the `pending` records;
        the greatest pending event time (None: none), before which reads take the reference."""
        self.plan = plan
        # A read after every pending record's event time counts each of them whole: then a
        # record is a tile of its own, at the start of the tile it will go to (a window
        # starts at a tile's start, so the record is in it exactly when that tile is).
        for i, (agg, (starts, states)) in enumerate(zip(plan.slots, tiles, strict=True)):
            if not pending:
                break
            size = agg.window.tile
            for event_time, partition, offset, values in pending:
                if values[i] is not None:
                    starts.append(event_time - event_time % size if size else 0)
                    states.append(agg.add(agg.empty(), values[i], event_time, (partition, offset)))
        self.template = plan.names  # the reference's order (copied by `read`)
        blocks: dict[tuple[str, tuple[int, ...]], Block] = {}
        for agg, (starts, states) in zip(plan.slots, tiles, strict=True):
            key = (agg.window.name, tuple(starts))
            block = blocks.get(key)
            if block is None:
                block = blocks[key] = Block(agg.window, sorted(starts))
            if block.starts != starts:  # tiles made out of order: take them in start order
                order = sorted(range(len(starts)), key=starts.__getitem__)
                states = [states[j] for j in order]
            block.names.append(agg.name)
            block.aggs.append(agg)
            block.defaults.append(agg.default)
            block.states.append(states)
        self.blocks = list(blocks.values())
        return max(row[0] for row in pending) if pending else None

    def read(self, at: int) -> dict[str, Any]:
        """Every feature's value at `at`, equal to `EntityState.read(at)` of the state."""
        if self.pending is not None and self.pending >= at:
            return self._reference().read(at)  # a pending record at or after `at`: the reference's
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
