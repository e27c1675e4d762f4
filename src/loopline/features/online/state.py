"""Per-entity online state of one `Aggregations` group: a ring of tiles per feature.

Reads are exact (docs/decisions/0008) for every instant `at` no earlier than
the state's *clock*: the instant before which no read will come. The
processor keeps it at the largest arrival time it has processed, since a
read at `at` happens after every record with arrival <= `at` is processed.

Why that is enough: a record whose event time is before the clock can never
be at or after a read's `at`, so it goes straight into its tile. A record
whose event time is at or after the clock (an event "from the future") waits
in `pending` as a raw value, because a later read may come before its event
time; reads add the pending values with `start <= e < at` one by one, and
pending records move into their tiles once the clock passes them. So every
tile holds only event times `< clock <= at`, and a read merges the tiles from
the window's start on without ever splitting one.

Pruning follows from the same clock: `window.start` never decreases, so a
tile that starts before `window.start(clock)` is outside every window a read
may still ask for, and is dropped (as are records that would land in it).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from loopline.features.aggregations import Aggregation, Position
from loopline.features.declarations import Aggregations
from loopline.features.online.unreadable import UnreadableRecord

PRUNE_AFTER = 32


class Plan:
    """An `Aggregations` group compiled once: what each record adds to each feature.

    Shared by every `EntityState` of the group. `filter_errors` counts `where`
    filters that raised: such a record does not count for that feature.
    """

    def __init__(self, group: Aggregations) -> None:
        self.group = group
        # each feature is its own aggregation: it keeps its tiles' states
        self.slots: tuple[Aggregation[Any], ...] = tuple(group.features)
        self.defaults = {f.name: f.default for f in group.features}
        self.filter_errors = 0
        # What `values` needs per feature, looked up once: the field, the filter, and the
        # check of a value (the types it reads, or a kind's own `usable`; None: any value).
        self.reads = tuple(
            (
                f.field,
                f.where,
                f.types if type(f).usable is Aggregation.usable else None,
                None if type(f).usable is Aggregation.usable else f.usable,
                f,
            )
            for f in self.slots
        )
        # Per feature, the feature whose tiles it reads: itself, or an earlier one whose
        # states equal its own (`Aggregation.state_key`: a sum and a mean of one field and
        # window). A state keeps one tile map for both and adds each record to it once.
        owners: dict[tuple[Any, ...], int] = {}
        self.owners = tuple(
            i if (key := s.state_key()) is None else owners.setdefault(key, i)
            for i, s in enumerate(self.slots)
        )
        # What `_put` needs per feature that owns its tiles, looked up once.
        self.puts = tuple(
            (i, s.window.tile, s.add, s.empty)
            for i, s in enumerate(self.slots)
            if self.owners[i] == i
        )
        # Features whose states are already plain data (dump is the identity).
        self.plain_dumps = tuple(type(s).dump is Aggregation.dump for s in self.slots)
        # What turns a dumped tile state into one a read may use (None: the dump itself).
        self.view_loads = tuple(s.view_load() for s in self.slots)
        self.windowed = any(f.window.tile is not None for f in group.features)
        # A read's values in feature order, before any is set (`TileReader` copies it).
        self.names = dict.fromkeys(f.name for f in self.slots)

    def new_tiles(self) -> list[dict[int, Any]]:
        """Per feature, an empty map of tile start -> state (shared as `owners` says)."""
        tiles: list[dict[int, Any]] = []
        for i, owner in enumerate(self.owners):
            tiles.append({} if owner == i else tiles[owner])
        return tiles

    def values(self, fields: Mapping[str, Any]) -> list[Any]:
        """What a record adds to each feature, in feature order: None when nothing."""
        values, errors = self.read(fields)
        self.filter_errors += errors
        return values

    def read(self, fields: Mapping[str, Any], record: str = "a record") -> tuple[list[Any], int]:
        """`values` of a record, and how many filters raised on it (not yet counted).

        Raises `UnreadableRecord` when a feature would read a value it cannot
        use (`record` says which record, for the message).
        """
        out: list[Any] = []
        errors = 0
        for field, where, types, usable, feature in self.reads:
            if where is not None:
                try:
                    passes = where(fields)
                except Exception:
                    errors += 1
                    passes = False
                if not passes:
                    out.append(None)
                    continue
            if field is None:
                out.append(1)
                continue
            value = fields.get(field)
            if value is not None and (
                (types is not None and type(value) not in types)
                or (usable is not None and not usable(value))
            ):
                raise UnreadableRecord.unusable(record, feature, value)
            out.append(value)
        return out, errors


class EntityState:
    """The tiles of every feature of one group for one entity.

    >>> from loopline.features import Entity, Aggregations
    >>> from loopline.features.aggregations import Count
    >>> plan = Plan(Aggregations("clicks", Entity("member", "member_id"), [Count(window="1h", name="clicks_1h")]))
    >>> state = EntityState(plan)
    >>> state.add(1_000, {"member_id": "m1"}, (0, 0), clock=1_000)
    >>> state.add(90_000, {"member_id": "m1"}, (0, 1), clock=2_000)  # event time ahead of the clock
    >>> state.read(60_000), state.read(90_000), state.read(90_001)
    ({'clicks_1h': 1}, {'clicks_1h': 1}, {'clicks_1h': 2})
    >>> state.read(3_630_000)  # an hour on, the first click has left the window
    {'clicks_1h': 1}
    """

    __slots__ = ("clock", "floors", "pending", "plan", "tiles", "unpruned")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.clock: int | None = None
        # Per feature: tile start -> state (lifetime features have the one tile 0); features
        # with equal states share one map (`Plan.owners`).
        self.tiles: list[dict[int, Any]] = plan.new_tiles()
        # Per feature: tiles before this start were pruned (None: nothing pruned yet).
        self.floors: list[int | None] = [None for _ in plan.slots]
        # [event_time, partition, offset, values] of records not yet before the clock,
        # sorted by event time.
        self.pending: list[list[Any]] = []
        self.unpruned = 0  # records put into tiles since the last pruning

    def add(
        self, event_time: int, fields: Mapping[str, Any], position: Position, clock: int
    ) -> None:
        """Count one (non-late) record; `clock` as in the module docstring."""
        self.add_values(event_time, self.plan.values(fields), position, clock)

    def add_values(
        self, event_time: int, values: list[Any], position: Position, clock: int
    ) -> None:
        """`add` of a record whose `Plan.values` are `values`."""
        self.advance(clock)
        if all(v is None for v in values):
            return
        if self.clock is not None and event_time < self.clock:
            self._put(event_time, position, values)
        else:
            row = [event_time, position[0], position[1], values]
            bisect.insort(self.pending, row, key=lambda r: r[0])

    def advance(self, clock: int) -> None:
        """Promise that no read will come before `clock`: settles pending records, prunes.

        Pruning only saves memory (reads skip tiles before their window's
        start anyway), so it runs once `PRUNE_AFTER` records went into tiles
        since the last time, not on every record; `OnlineFeatures.prune` prunes
        every entity.
        """
        if self.clock is not None and clock <= self.clock:
            return
        self.clock = clock
        pending = self.pending
        if pending and pending[0][0] < clock:
            settled = bisect.bisect_left(pending, clock, key=lambda r: r[0])
            for event_time, partition, offset, values in pending[:settled]:
                self._put(event_time, (partition, offset), values)
            del pending[:settled]
        if self.unpruned >= PRUNE_AFTER:
            self.prune()

    def prune(self) -> None:
        """Drop the tiles before each window's start at the clock."""
        self.unpruned = 0
        clock = self.clock
        if clock is None or not self.plan.windowed:
            return
        for i, slot in enumerate(self.plan.slots):
            start = slot.window.start(clock)
            floor = self.floors[i]
            if start is not None and (floor is None or start > floor):
                tiles = self.tiles[i]
                for old in [t for t in tiles if t < start]:
                    del tiles[old]
                self.floors[i] = start

    def _put(self, event_time: int, position: Position, values: list[Any]) -> None:
        self.unpruned += 1
        floors, all_tiles = self.floors, self.tiles
        for i, size, add, empty in self.plan.puts:
            value = values[i]
            if value is None:
                continue
            start = event_time - event_time % size if size else 0
            floor = floors[i]
            if floor is not None and start < floor:
                continue
            tiles = all_tiles[i]
            state = tiles.get(start)
            tiles[start] = add(empty() if state is None else state, value, event_time, position)

    def read(self, at: int) -> dict[str, Any]:
        """Every feature's value at instant `at` (exact when `at` >= the clock), or its default."""
        out: dict[str, Any] = {}
        end = bisect.bisect_left(self.pending, at, key=lambda r: r[0])
        for i, agg in enumerate(self.plan.slots):
            start = agg.window.start(at)
            acc = agg.empty()
            for tile, state in self.tiles[i].items():
                if start is None or start <= tile < at:
                    acc = agg.merge(acc, state)
            for event_time, partition, offset, values in self.pending[:end]:
                value = values[i]
                if value is not None and (start is None or event_time >= start):
                    acc = agg.add(acc, value, event_time, (partition, offset))
            result = agg.result(acc)
            out[agg.name] = agg.default if result is None else result
        return out

    @classmethod
    def merged(cls, plan: Plan, states: list[EntityState]) -> EntityState:
        """One state holding the records of all `states` (of one entity, from several partitions).

        Exact for reads at or after every state's clock: tiles merge tile by
        tile, pending records stay pending (a read adds those before its instant).

        >>> from loopline.features import Entity, Aggregations
        >>> from loopline.features.aggregations import Count
        >>> plan = Plan(Aggregations("clicks", Entity("member", "member_id"), [Count(window="1h", name="clicks_1h")]))
        >>> a, b = EntityState(plan), EntityState(plan)
        >>> a.add(1_000, {}, (0, 0), clock=1_000); a.add(2_000, {}, (0, 1), clock=2_500)
        >>> b.add(1_500, {}, (1, 0), clock=1_600)
        >>> EntityState.merged(plan, [a, b]).read(3_000)
        {'clicks_1h': 3}
        """
        out = cls(plan)
        clocks = [s.clock for s in states if s.clock is not None]
        out.clock = max(clocks) if clocks else None
        for i, agg in enumerate(plan.slots):
            floors = [s.floors[i] for s in states if s.floors[i] is not None]
            out.floors[i] = max(floors) if floors else None
            if plan.owners[i] != i:  # its tiles are its owner's, merged already
                continue
            tiles = out.tiles[i]
            for s in states:
                for tile, state in s.tiles[i].items():
                    tiles[tile] = agg.merge(tiles[tile] if tile in tiles else agg.empty(), state)
        out.pending = sorted((row for s in states for row in s.pending), key=lambda r: r[0])
        return out

    def is_empty(self) -> bool:
        """Whether the entity has nothing left that any read could see."""
        return not self.pending and not any(self.tiles)

    def dump(self) -> dict[str, Any]:
        """The state as JSON/msgpack-ready data (None for the tiles of a feature that
        shares its owner's, `Plan.owners`)."""
        plan = self.plan
        return {
            "clock": self.clock,
            "floors": list(self.floors),
            "tiles": [
                None
                if owner != i
                else list(tiles.items())
                if plain
                else [[tile, slot.dump(state)] for tile, state in tiles.items()]
                for i, (slot, plain, tiles, owner) in enumerate(
                    zip(plan.slots, plan.plain_dumps, self.tiles, plan.owners, strict=True)
                )
            ],
            "pending": [[e, p, o, list(values)] for e, p, o, values in self.pending],
        }

    @classmethod
    def load(cls, plan: Plan, data: Mapping[str, Any]) -> EntityState:
        """The state that `dump` gave `data` for, on the same `plan`."""
        state = cls(plan)
        state.clock = data["clock"]
        state.floors = list(data["floors"])
        # A feature sharing its owner's tiles takes them whatever its entry holds (None;
        # a copy of its owner's in a changelog written before states were shared).
        loaded: list[dict[int, Any]] = []
        for i, (slot, tiles, owner) in enumerate(
            zip(plan.slots, data["tiles"], plan.owners, strict=True)
        ):
            loaded.append(
                loaded[owner]
                if owner != i
                else {int(tile): slot.load(value) for tile, value in tiles}
            )
        state.tiles = loaded
        state.pending = [[e, p, o, list(values)] for e, p, o, values in data["pending"]]
        return state
