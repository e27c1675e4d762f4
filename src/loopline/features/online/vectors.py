"""Online feature vectors: a whole `FeatureSet` computed incrementally, record by record.

`OnlineFeatures` is what the stream processor drives: it routes each record
of a feature source to the aggregations and tables declared on that topic,
drops late records, and answers "the features of entity E at instant T"
exactly as docs/decisions/0008 defines them, as long as T is no earlier than
the arrival of any record processed (`clock`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopline.features.declarations import DeclarationError, FeatureSet
from loopline.features.online.reads import TileReader
from loopline.features.online.state import EntityState, Plan
from loopline.features.online.tables import TableState
from loopline.features.online.times import event_time_ms
from loopline.features.online.unreadable import UnreadableRecord
from loopline.features.online.vector_plans import VectorPlan, in_dependency_order
from loopline.features.online.watermarks import Watermarks
from loopline.features.sources import key_entity


class OnlineFeatures:
    """The online computation of a `FeatureSet`: `process` records, read `vector`s.

    >>> from loopline.features import Aggregations, Derived, Entity, FeatureSet
    >>> from loopline.features.aggregations import Count, Sum
    >>> member = Entity("member", key="member_id")
    >>> buys = Aggregations("orders", member, [Count(window="1h", name="orders_1h"),
    ...                                        Sum("amount", name="spent_lifetime")],
    ...                     time="at", lateness="5m")
    >>> avg = Derived("avg_order", ("spent_lifetime", "orders_1h"), lambda s, n: s / n, default=0.0)
    >>> online = OnlineFeatures(FeatureSet([buys], derived=[avg]))
    >>> t0 = event_time_ms("2024-05-01T10:00:00Z")
    >>> online.process("orders", 0, 0, t0 + 900, "m1",
    ...                {"member_id": "m1", "at": "2024-05-01T10:00:00.500Z", "amount": 30})
    False
    >>> online.process("orders", 0, 1, t0 + 2_000, "m1",
    ...                {"member_id": "m1", "at": t0 + 1_800, "amount": 12})
    False
    >>> online.process("orders", 0, 2, t0 + 3_000, "m1",  # more than 5 minutes behind: late
    ...                {"member_id": "m1", "at": "2024-05-01T09:50:00Z", "amount": 99})
    True
    >>> online.vector("member", "m1", at=t0 + 60_000)
    {'orders_1h': 2, 'spent_lifetime': 42.0, 'avg_order': 21.0}
    >>> online.vector("member", "m1", at=t0 + 3_700_000)  # an hour on: the count is back to 0
    {'orders_1h': 0, 'spent_lifetime': 42.0, 'avg_order': 0.0}
    >>> online.late_records, online.derived_errors  # 42.0 / 0 raised: avg_order took its default
    (1, 1)
    """

    def __init__(self, features: FeatureSet) -> None:
        self.features = features
        self.clock: int | None = None
        self.late_records = 0
        self.derived_errors = 0
        # per derived feature, the reads whose function raised (and the first such error)
        self.derived_failures: dict[str, int] = {}
        self.first_derived_error: dict[str, str] = {}
        self._plans = [Plan(group) for group in features.aggregations]
        self._watermarks = [Watermarks() for _ in features.aggregations]
        self._entities: list[dict[str, EntityState]] = [{} for _ in features.aggregations]
        # Per group, each entity's state laid out for reads (online/reads.py), made on its
        # first read after a change; whatever changes a state in place drops its reader.
        self._readers: list[dict[str, TileReader]] = [{} for _ in features.aggregations]
        self._tables = [TableState(table) for table in features.tables]
        self._routes: dict[str, tuple[list[int], list[int]]] = {}
        for i, group in enumerate(features.aggregations):
            self._routes.setdefault(group.source, ([], []))[0].append(i)
        for i, table in enumerate(features.tables):
            self._routes.setdefault(table.source, ([], []))[1].append(i)
        self._derived = in_dependency_order(features.derived)
        self._vector_plans: dict[tuple[str, tuple[str, ...] | None], VectorPlan] = {}
        # plans of vectors of several entities, by (entity names, names)
        self._related_plans: dict[tuple[tuple[str, ...], tuple[str, ...] | None], VectorPlan] = {}
        # (kind, index, entity) of every state changed since `take_changes`: what a
        # changelog must write ("a": an aggregation group's state, "t": a table row).
        self._changed: set[tuple[str, int, str]] = set()

    @property
    def filter_errors(self) -> int:
        """Records a `where` filter raised on (they did not count for that feature)."""
        return sum(plan.filter_errors for plan in self._plans)

    def process(
        self,
        source: str,
        partition: int,
        offset: int,
        arrival: int,
        key: str | None,
        fields: Mapping[str, Any] | None,
    ) -> bool:
        """Apply one record of topic `source`; True when it was late (and so not counted).

        `arrival` is the record's log timestamp (ms), `key` its log key, used as
        the entity id when `fields` lacks the entity's key field, and `fields`
        its value (None: a tombstone, which only tables use). Raises
        `UnreadableRecord`, changing nothing, when a record has no entity id,
        an unreadable event time, or a value a feature reads and cannot use (a
        string where a sum reads numbers: docs/decisions/0008).
        """
        routes = self._routes.get(source)
        if routes is None:
            raise DeclarationError(
                f"no aggregations or tables are declared on topic {source!r}: "
                f"declared are {', '.join(sorted(self._routes)) or 'none'}"
            )
        groups, tables = routes
        where = f"record {source}[{partition}]@{offset}"
        events = []
        for i in groups if fields is not None else ():
            group = self.features.aggregations[i]
            entity = _entity_id(where, group.key_field, key, fields)
            event_time = arrival if group.time is None else _event_time(where, group.time, fields)
            # every value checked before anything changes: an unusable one raises here
            events.append((i, entity, event_time, *self._plans[i].read(fields, where)))
        rows = [
            (i, _entity_id(where, self.features.tables[i].key_field, key, fields)) for i in tables
        ]
        self.clock = arrival if self.clock is None else max(self.clock, arrival)
        late = False
        for i, entity, event_time, values, filter_errors in events:
            marks = self._watermarks[i]
            if marks.is_late(partition, event_time, int(self.features.aggregations[i].lateness)):
                late = True
                self.late_records += 1
            else:
                state = self._entities[i].get(entity)
                if state is None:
                    state = self._entities[i][entity] = EntityState(self._plans[i])
                state.add_values(event_time, values, (partition, offset), self.clock)
                self._readers[i].pop(entity, None)
                self._plans[i].filter_errors += filter_errors
                self._changed.add(("a", i, entity))
            marks.observe(partition, event_time)
        for i, entity in rows:
            self._tables[i].put(entity, (partition, offset), fields)
            self._changed.add(("t", i, entity))
        return late

    def vector(
        self,
        entity_name: str | Mapping[str, Any],
        entity_id: str | None = None,
        names: Sequence[str] | None = None,
        at: int | None = None,
    ) -> dict[str, Any]:
        """The features `names` (default: all) of one entity at instant `at` (default: `clock`).

        Missing values take their defaults; derived features are computed last,
        and take their default (counted in `derived_errors`) when their function raises.

        Given a mapping of entity name -> id instead (a member and a candidate
        item), the vector holds the features of each of those entities, in
        declaration order, and the derived features whose inputs are all among
        them, across entities too; `names` and `at` then come by keyword. An id
        of None reads as an entity without records: defaults.

        >>> from loopline.features import Derived, Entity, FeatureSet, Table, TableFeature
        >>> member, item = Entity("member", "member_id"), Entity("item", "item_id")
        >>> online = OnlineFeatures(FeatureSet(tables=[
        ...     Table("profiles", member, [TableFeature("country", "country", default="??")]),
        ...     Table("items", item, [TableFeature("item_country", "country", default="??")]),
        ... ], derived=[Derived("same_country", ("country", "item_country"), lambda a, b: a == b)]))
        >>> online.process("profiles", 0, 0, 1_000, "m1", {"country": "PT"})
        False
        >>> online.process("items", 0, 0, 1_000, "i7", {"country": "PT"})
        False
        >>> online.vector("member", "m1")
        {'country': 'PT'}
        >>> online.vector({"member": "m1", "item": "i7"})
        {'country': 'PT', 'item_country': 'PT', 'same_country': True}
        >>> online.vector({"item": "i8", "member": "m1"}, names=["same_country"])
        {'same_country': False}
        """
        if not isinstance(entity_name, str):
            return self._related_vector(entity_name, entity_id, names, at)
        plan = self._vector_plan(entity_name, names)
        if not isinstance(entity_id, str):
            if entity_id is None:
                raise TypeError(f"vector({entity_name!r}, ...) needs the id of the entity")
            entity_id = str(entity_id)  # as `process` keys them
        if at is None:
            at = self.clock if self.clock is not None else 0
        values: dict[str, Any] = {}
        for i in plan.groups:
            values.update(self._read(i, entity_id, at))
        for i in plan.tables:
            values.update(self._tables[i].read(entity_id))
        for d in plan.derived:
            try:
                values[d.name] = d.fn(*(values[name] for name in d.inputs))
            except Exception as exc:
                self._failed(d.name, exc)
                values[d.name] = d.default
        return {name: values[name] for name in plan.names}

    def _read(self, i: int, entity_id: str, at: int) -> dict[str, Any]:
        """The values of group `i`'s features of one entity at `at` (`EntityState.read`'s)."""
        reader = self._readers[i].get(entity_id)
        if reader is None:
            state = self._entities[i].get(entity_id)
            if state is None:
                return self._plans[i].defaults
            reader = self._readers[i][entity_id] = TileReader(state)
        return reader.read(at)

    def _failed(self, name: str, exc: Exception) -> None:
        """Count a derived feature's raise (it takes its default: a silent failure otherwise)."""
        self.derived_errors += 1
        self.derived_failures[name] = self.derived_failures.get(name, 0) + 1
        self.first_derived_error.setdefault(name, f"{type(exc).__name__}: {exc}")

    def vectors(
        self,
        entities: Sequence[Mapping[str, Any]],
        names: Sequence[str] | None = None,
        at: int | None = None,
    ) -> list[dict[str, Any]]:
        """`vector` of each mapping of entity name -> id in `entities`, at one instant.

        Each entity's features are read once however many mappings name it
        (a member ranked with 50 candidate items is read once, not 50 times).

        >>> from loopline.features import Entity, FeatureSet, Table, TableFeature
        >>> member, item = Entity("member", "member_id"), Entity("item", "item_id")
        >>> online = OnlineFeatures(FeatureSet(tables=[
        ...     Table("profiles", member, [TableFeature("country", "country", default="??")]),
        ...     Table("items", item, [TableFeature("price", "price", default=0.0)])]))
        >>> online.process("items", 0, 0, 1_000, "i7", {"price": 9.5})
        False
        >>> online.vectors([{"member": "m1", "item": "i7"}, {"member": "m1", "item": "i8"}])
        [{'country': '??', 'price': 9.5}, {'country': '??', 'price': 0.0}]
        """
        if at is None:
            at = self.clock if self.clock is not None else 0
        memo: dict[tuple[bool, int, str | None], dict[str, Any]] = {}
        return [self._related_vector(ids, None, names, at, memo) for ids in entities]

    def _related_vector(
        self,
        ids: Mapping[str, Any],
        entity_id: object,
        names: Sequence[str] | None,
        at: int | None,
        memo: dict[tuple[bool, int, str | None], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """`vector` of several entities: `ids` maps each entity's name to its id; `memo`
        keeps the values read of each (aggregation group or table, entity id) for reuse."""
        if not isinstance(ids, Mapping):
            raise TypeError(
                "vector takes an entity name and id, or a mapping of entity name -> id; "
                f"got {type(ids).__name__} {ids!r}"
            )
        if entity_id is not None:
            raise TypeError(
                "with a mapping of entity name -> id, give names= and at= by keyword: "
                f"vector({dict(ids)!r}, names=..., at=...)"
            )
        cache_key = (tuple(ids), None if names is None else tuple(names))
        plan = self._related_plans.get(cache_key)
        if plan is None:
            plan = self._related_plans[cache_key] = VectorPlan.of(
                self.features, self._derived, cache_key[0], names
            )
        keys = {
            name: value if value is None or isinstance(value, str) else str(value)
            for name, value in ids.items()
        }
        if at is None:
            at = self.clock if self.clock is not None else 0
        values: dict[str, Any] = {}
        if memo is None:
            memo = {}
        for i, entity in plan.group_entities:
            key = keys[entity]
            part = memo.get((False, i, key))
            if part is None:
                part = memo[False, i, key] = self._read(i, key, at)  # type: ignore[arg-type]
            values.update(part)
        for i, entity in plan.table_entities:
            key = keys[entity]
            part = memo.get((True, i, key))
            if part is None:
                part = memo[True, i, key] = self._tables[i].read(key)  # type: ignore[arg-type]
            values.update(part)
        for d in plan.derived:
            try:
                values[d.name] = d.fn(*(values[name] for name in d.inputs))
            except Exception as exc:
                self._failed(d.name, exc)
                values[d.name] = d.default
        return {name: values[name] for name in plan.names}

    def prune(self, now: int) -> None:
        """Promise that no read will come before `now`: drops tiles and entities out of every window."""
        self.clock = now if self.clock is None else max(self.clock, now)
        for readers in self._readers:
            readers.clear()
        for i, entities in enumerate(self._entities):
            for entity in list(entities):
                state = entities[entity]
                state.advance(self.clock)
                state.prune()
                if state.is_empty():
                    del entities[entity]
                    self._changed.add(("a", i, entity))

    def entities(self, entity_name: str) -> int:
        """How many entities of `entity_name` have aggregation state (for metrics)."""
        return sum(
            len(self._entities[i])
            for i, group in enumerate(self.features.aggregations)
            if group.entity.name == entity_name
        )

    def dump(self) -> dict[str, Any]:
        """All online state as JSON/msgpack-ready data (for a changelog or a snapshot)."""
        return {
            "fingerprint": self.features.fingerprint(),
            "clock": self.clock,
            "counters": {"late_records": self.late_records, "derived_errors": self.derived_errors},
            "filter_errors": [plan.filter_errors for plan in self._plans],
            "watermarks": [marks.dump() for marks in self._watermarks],
            "entities": [
                {entity: state.dump() for entity, state in entities.items()}
                for entities in self._entities
            ],
            "tables": [table.dump() for table in self._tables],
        }

    @classmethod
    def load(cls, features: FeatureSet, data: Mapping[str, Any]) -> OnlineFeatures:
        """The online state `dump` gave `data` for; refuses state of other declarations."""
        if data["fingerprint"] != features.fingerprint():
            raise DeclarationError(
                "this online state was computed for other feature declarations "
                f"(fingerprint {data['fingerprint'][:12]}, declared {features.fingerprint()[:12]}): "
                "recompute it from the log"
            )
        online = cls(features)
        online.clock = data["clock"]
        online.late_records = data["counters"]["late_records"]
        online.derived_errors = data["counters"]["derived_errors"]
        for plan, errors in zip(online._plans, data["filter_errors"], strict=True):
            plan.filter_errors = errors
        online._watermarks = [Watermarks.load(marks) for marks in data["watermarks"]]
        online._entities = [
            {entity: EntityState.load(plan, state) for entity, state in entities.items()}
            for plan, entities in zip(online._plans, data["entities"], strict=True)
        ]
        for table, rows in zip(online._tables, data["tables"], strict=True):
            table.load(rows)
        return online

    # -- one entry at a time, for a changelog -------------------------------------------

    def take_changes(self) -> list[tuple[str, int, str]]:
        """The (kind, index, entity) of every state changed since the last call, and forget them.

        kind ``"a"`` is the state of ``features.aggregations[index]`` for the
        entity, ``"t"`` its row of ``features.tables[index]``; `dump_entry`
        gives what to write (None: the entry is gone).
        """
        changed, self._changed = sorted(self._changed), set()
        return changed

    def entries(self) -> list[tuple[str, int, str]]:
        """The (kind, index, entity) of every state and table row held."""
        out = [("a", i, e) for i, entities in enumerate(self._entities) for e in entities]
        return out + [("t", i, e) for i, table in enumerate(self._tables) for e in table.entities()]

    def dump_entry(self, kind: str, index: int, entity: str) -> Any | None:
        """One entity's state or table row as msgpack-ready data; None when there is none."""
        if kind == "a":
            state = self._entities[index].get(entity)
            return None if state is None else state.dump()
        return self._tables[index].dump_row(entity)

    def load_entry(self, kind: str, index: int, entity: str, data: Any | None) -> None:
        """Set one entity's state or table row from `dump_entry` data (None removes it)."""
        if kind == "a":
            self._readers[index].pop(entity, None)
            if data is None:
                self._entities[index].pop(entity, None)
            else:
                self._entities[index][entity] = EntityState.load(self._plans[index], data)
        else:
            self._tables[index].load_row(entity, data)

    def set_state(self, index: int, entity: str, state: EntityState | None) -> None:
        """Put an already built state (an online store merges partitions' states)."""
        self._readers[index].pop(entity, None)
        if state is None:
            self._entities[index].pop(entity, None)
        else:
            self._entities[index][entity] = state

    def put_reader(self, index: int, entity: str, reader: TileReader | None) -> None:
        """Put a state as its reader (None removes it): an online store, which never changes
        a state it reads, lays changelog entries out for reads without building states."""
        self._entities[index].pop(entity, None)
        if reader is None:
            self._readers[index].pop(entity, None)
        else:
            self._readers[index][entity] = reader

    def plan(self, index: int) -> Plan:
        """The compiled plan of ``features.aggregations[index]``."""
        return self._plans[index]

    def dump_meta(self) -> dict[str, Any]:
        """Everything but the entities: clock, counters and watermarks."""
        return {
            "clock": self.clock,
            "counters": {"late_records": self.late_records, "derived_errors": self.derived_errors},
            "filter_errors": [plan.filter_errors for plan in self._plans],
            "watermarks": [marks.dump() for marks in self._watermarks],
        }

    def load_meta(self, data: Mapping[str, Any]) -> None:
        """Restore what `dump_meta` gave."""
        self.clock = data["clock"]
        self.late_records = data["counters"]["late_records"]
        self.derived_errors = data["counters"]["derived_errors"]
        for plan, errors in zip(self._plans, data["filter_errors"], strict=True):
            plan.filter_errors = errors
        self._watermarks = [Watermarks.load(marks) for marks in data["watermarks"]]

    def _vector_plan(self, entity_name: str, names: Sequence[str] | None) -> VectorPlan:
        cache_key = (entity_name, None if names is None else tuple(names))
        plan = self._vector_plans.get(cache_key)
        if plan is None:
            plan = self._vector_plans[cache_key] = VectorPlan.of(
                self.features, self._derived, entity_name, names
            )
        return plan


def _entity_id(
    where: str, key_field: str, key: str | None, fields: Mapping[str, Any] | None
) -> str:
    value = None if fields is None else fields.get(key_field)
    if value is None and key is not None:
        value = key_entity(key, key_field)
    if value is None or value == "":
        raise UnreadableRecord(f"{where} has no entity id: no {key_field!r} field and no log key")
    return value if isinstance(value, str) else str(value)


def _event_time(where: str, name: str, fields: Mapping[str, Any]) -> int:
    try:
        return event_time_ms(fields.get(name))
    except ValueError as exc:
        raise UnreadableRecord(f"{where}: time field {name!r}: {exc}") from None
