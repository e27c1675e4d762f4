"""The records of an `Aggregations` group that can count, and the spine keys they count for.

A record can count for a feature of the group when it has an event time, is
not late (behind its partition's watermark, the largest event time at lower
offsets, by more than the allowed lateness: docs/decisions/0008) and is about
an entity of the spine. It counts at `T` once it is *ready*: known
(``arrival <= T``) and before `T` (``event_time < T``), that is when
``ready = max(arrival, event_time + 1) <= T``.

Entities are compared as integer codes: code ``i`` is the spine's ``i``-th
distinct entity id (`SpineKeys`), and records of other entities are dropped.

>>> source = pa.table({
...     "partition": pa.array([0, 0, 0, 1], pa.int32()), "offset": [0, 1, 2, 0],
...     "arrival": [10, 20, 30, 40], "entity": ["a", "a", "b", "c"],
...     "event_time": [1_000, 100, 990, 5]})
>>> keys = SpineKeys.of(pa.table({"entity": ["b", "a"], "at": [2_000, 2_000]}))
>>> keys.code.tolist()
[0, 1]
>>> records = Records.of(source, "entity", "event_time", lateness=50, keys=keys)
>>> records.rows.tolist(), records.code.tolist()  # offset 1 is late, entity c not in the spine
([0, 2], [1, 0])
>>> records.ready.tolist()
[1001, 991]
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MAX = int(np.iinfo(np.int64).max)
_MIN = int(np.iinfo(np.int64).min)


@dataclass
class SpineKeys:
    """The spine's rows as codes: ``code[i]`` is row i's entity (-1: no entity id),
    ``at[i]`` its instant (epoch ms)."""

    entities: pa.Array  # distinct entity ids (strings); code i is entities[i]
    code: np.ndarray  # int64
    at: np.ndarray  # int64

    @classmethod
    def of(cls, spine: pa.Table) -> SpineKeys:
        """The keys of a spine with ``entity`` and ``at`` (no null) columns."""
        entity = spine.column("entity").cast(pa.string()).combine_chunks()
        encoded = entity.dictionary_encode()
        code = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
        at = spine.column("at").cast(pa.int64()).to_numpy()
        return cls(encoded.dictionary, code, at)

    def codes_of(self, entities: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """The code of each of `entities`, -1 for one that no spine row has."""
        found = pc.index_in(entities, value_set=self.entities)
        if isinstance(found, pa.ChunkedArray):
            found = found.combine_chunks() if found.num_chunks != 1 else found.chunk(0)
        return found.fill_null(-1).to_numpy().astype(np.int64)


@dataclass
class Records:
    """A group's records that can count, as columns; ``rows`` are their rows in the source
    table, in the source's order."""

    rows: np.ndarray  # int64 indices into the source table
    code: np.ndarray  # entity code (SpineKeys)
    event_time: np.ndarray
    arrival: np.ndarray
    ready: np.ndarray  # max(arrival, event_time + 1)

    @classmethod
    def of(
        cls, source: pa.Table, entity: str, time: str, *, lateness: int, keys: SpineKeys
    ) -> Records:
        """The records of `source` (an `events_table`) that can count, reading the entity
        from column `entity` and the event time from column `time`."""
        times = source.column(time)
        timed = np.flatnonzero(times.is_valid().to_numpy(zero_copy_only=False))
        event_time = times.fill_null(0).to_numpy()[timed]
        partition = source.column("partition").to_numpy()[timed]
        offset = source.column("offset").to_numpy()[timed]
        keep = ~_late(partition, offset, event_time, lateness)
        # an event time of the last int64 is never before any instant: it can never count
        keep &= event_time != _MAX
        code = keys.codes_of(source.column(entity))[timed]
        keep &= code >= 0
        rows = timed[keep]
        event_time = event_time[keep]
        arrival = source.column("arrival").to_numpy()[rows]
        ready = np.maximum(arrival, event_time + 1)
        return cls(rows, code[keep], event_time, arrival, ready)

    def table(self, source: pa.Table, entity: str, time: str, columns: list[str]) -> pa.Table:
        """The records as a table for SQL: position, ``entity``, ``event_time``, ``ready``
        and `columns` of `source`."""
        taken = source.take(pa.array(self.rows))
        out = {
            "partition": taken.column("partition"),
            "offset": taken.column("offset"),
            "arrival": taken.column("arrival"),
            "entity": taken.column(entity),
            "event_time": pa.array(self.event_time, pa.int64()),
            "ready": pa.array(self.ready, pa.int64()),
        }
        for name in columns:
            out.setdefault(name, taken.column(name))
        return pa.table(out)


def _late(
    partition: np.ndarray, offset: np.ndarray, event_time: np.ndarray, lateness: int
) -> np.ndarray:
    """Whether each record is behind its partition's watermark (the largest event time at
    lower offsets) by more than `lateness`."""
    n = len(event_time)
    late = np.zeros(n, bool)
    if n < 2:
        return late
    after = partition[1:] > partition[:-1]
    in_order = bool(
        np.all(after | ((partition[1:] == partition[:-1]) & (offset[1:] > offset[:-1])))
    )
    order = np.arange(n) if in_order else np.lexsort((offset, partition))
    p, t = partition[order], event_time[order]
    cuts = [0, *(np.flatnonzero(p[1:] != p[:-1]) + 1).tolist(), n]
    for start, end in pairwise(cuts):
        if end - start < 2:
            continue
        mark = np.maximum.accumulate(t[start : end - 1])  # before each record from the second
        late[order[start + 1 : end]] = _behind(t[start + 1 : end], mark, int(lateness))
    return late


def _behind(t: np.ndarray, mark: np.ndarray, lateness: int) -> np.ndarray:
    """``t < mark - lateness``, exactly, where int64 arithmetic would wrap."""
    if lateness >= 0:
        bound = np.where(mark < _MIN + lateness, _MIN, mark - np.int64(lateness))
        return t < bound
    over = mark > _MAX + lateness  # mark - lateness is above every int64
    return over | (t < np.where(over, _MAX, mark - np.int64(lateness)))
