"""Changelog-backed state per partition, restored on assignment.

A stateful task keeps one state per *unit* (a partition of its input: the
feature processor's unit is a source partition, the joiner's a partition
number of its co-partitioned inputs). Each unit is backed by one partition
of a compacted changelog topic. `PartitionedState` restores a unit from its
changelog partition the first time the task needs it, remembers which units
changed, and at the runner's checkpoint writes their changes in the open
transaction, so state and input offsets commit together (Quix Streams'
`Checkpoint`, Kafka Streams' state stores).

How a unit's state is made, loaded and dumped is the task's: a `StateCodec`.

>>> import tempfile
>>> from loopline.log import TopicConfig, open_log
>>> class Counts(StateCodec):  # one dict of counts per unit, one changelog entry per key
...     def new(self, unit): return {"changed": set(), "counts": {}}
...     def load(self, state, key, value): state["counts"][key.decode()] = int(value)
...     def settle(self, state): state["changed"].clear()
...     def dump(self, unit, state):
...         for k in sorted(state["changed"]):
...             yield k.encode(), str(state["counts"][k]).encode()
...         state["changed"].clear()
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("counts-changelog", TopicConfig(compact=True))
>>> store = PartitionedState(log, Counts(), lambda unit: TopicPartition("counts-changelog", unit))
>>> state = store.get(0)
>>> state["counts"]["m-1"] = 2; state["changed"].add("m-1"); store.changed(0)
>>> producer = log.producer(transactional_id="doc")
>>> producer.begin_transaction()
>>> store.write(lambda topic, value, key, partition: producer.send(
...     topic, value, key, partition=partition))
>>> producer.commit_transaction()
>>> PartitionedState(log, Counts(), lambda unit: TopicPartition("counts-changelog", unit)).get(0)
{'changed': set(), 'counts': {'m-1': 2}}
>>> producer.close(); log.close()
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from loopline.log import Log, TopicPartition
from loopline.stream.ranges import read_partitions

__all__ = ["PartitionedState", "StateCodec"]

U = TypeVar("U", bound=Hashable)
S = TypeVar("S")

Send = Callable[[str, "bytes | None", bytes, int], None]


class StateCodec(Generic[U, S]):
    """How a task's state of one unit is made, restored and written.

    `load` applies one changelog record (in log order; a None value is a
    tombstone); `settle` forgets the changes loading recorded (they are in the
    changelog already); `dump` yields ``(key, value)`` for every change since
    the last dump, and forgets them.
    """

    def new(self, unit: U) -> S:
        raise NotImplementedError

    def load(self, state: S, key: bytes, value: bytes | None) -> None:
        raise NotImplementedError

    def settle(self, state: S) -> None:
        return None

    def dump(self, unit: U, state: S) -> Iterable[tuple[bytes, bytes | None]]:
        raise NotImplementedError


class PartitionedState(Generic[U, S]):
    """The states of a task's units, each backed by a changelog partition (see the module).

    `changelog` maps a unit to its changelog partition.
    """

    def __init__(
        self, log: Log, codec: StateCodec[U, S], changelog: Callable[[U], TopicPartition]
    ) -> None:
        self.log, self.codec, self.changelog = log, codec, changelog
        self._states: dict[U, S] = {}
        self._dirty: dict[U, None] = {}
        self.restored = 0

    def get(self, unit: U) -> S:
        """The state of `unit`, restored from its changelog partition on first use."""
        state = self._states.get(unit)
        if state is None:
            self.restore([unit])
            state = self._states[unit]
        return state

    def restore(self, units: Iterable[U]) -> None:
        """Restore every unit of `units` not held yet, reading each changelog topic once."""
        wanted = [u for u in dict.fromkeys(units) if u not in self._states]
        by_topic: dict[str, dict[int, U]] = {}
        for unit in wanted:
            tp = self.changelog(unit)
            by_topic.setdefault(tp.topic, {})[tp.partition] = unit
            self._states[unit] = self.codec.new(unit)
        load = self.codec.load
        for topic, units_of in by_topic.items():
            ends = {p.partition: p.end for p in self.log.describe_topic(topic).partitions}
            partitions = {TopicPartition(topic, n) for n in units_of if ends.get(n, 0) > 0}
            if not partitions:
                continue
            for tp, record in read_partitions(self.log, topic, partitions, ends):
                load(self._states[units_of[tp.partition]], record.key or b"", record.value)
        for unit in wanted:
            self.codec.settle(self._states[unit])
        self.restored += len(wanted)

    def changed(self, unit: U) -> None:
        """Mark `unit` as changed: `write` will dump it."""
        self._dirty[unit] = None

    def write(self, send: Send) -> None:
        """Send the changes of every changed unit to its changelog partition."""
        dump = self.codec.dump
        for unit in self._dirty:
            tp = self.changelog(unit)
            for key, value in dump(unit, self._states[unit]):
                send(tp.topic, value, key, tp.partition)
        self._dirty = {}

    def drop(self, units: Iterable[U]) -> None:
        """Forget the state of `units` (another member owns them now)."""
        for unit in units:
            self._states.pop(unit, None)
            self._dirty.pop(unit, None)

    def clear(self) -> None:
        """Forget every state (after an abort: they are restored again as needed)."""
        self._states.clear()
        self._dirty = {}

    def __contains__(self, unit: object) -> bool:
        return unit in self._states

    def __iter__(self) -> Iterator[U]:
        return iter(self._states)

    def items(self) -> Iterable[tuple[U, S]]:
        return self._states.items()

    def values(self) -> Iterable[S]:
        return self._states.values()

    @property
    def dirty(self) -> dict[U, Any]:
        """The changed units, in the order they first changed."""
        return self._dirty
