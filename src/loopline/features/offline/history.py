"""Where a table topic's history is gone: spine rows whose table values the log cannot give.

A table feature at `T` is the latest record of the entity known at `T`
(docs/decisions/0008), so a dataset needs the topic's history, not only its
latest values. Compaction keeps only the latest record of a key, and
retention deletes a partition's oldest records: a spine row asking for a
value the online system served then, from a record that is gone, would
silently get the default. `MissingHistory` finds those rows.

What can be known. Both ways of losing records remove, for each key, a
prefix of its records: compaction drops a record only when a later one of
the same key is kept, and retention drops the oldest offsets of a partition.
So with the record key being the entity id (as ``loopline produce --key``
writes tables), a row (entity `E`, instant `T`) can lack history only when
`T` is before the first record the topic still holds for `E`, and some
record is missing before that record in its partition. Removed records leave
their offsets without records (`Gaps`); a removed record arrived no earlier
than the held record just before its offset (arrivals do not decrease within
a partition), so a gap after a record that arrived later than `T` cannot hide
a value `E` had at `T`.

What cannot. An entity with no record left (compaction drops a key entirely
once its tombstone is old enough) cannot be told from one that never had a
record: its rows are not counted. A table whose record keys are not the
entity ids is compacted by a key the table does not read: nothing holds. On
Kafka, a transaction's commit marker also leaves an offset without a record,
so a compacted topic written in transactions shows gaps compaction did not
make: its rows before an entity's first record are counted (rather too many
than a silent default).

>>> from loopline.features import Entity, Table, TableFeature
>>> from loopline.features.offline import events_table
>>> from loopline.features import FeatureSet
>>> from loopline.stream.ranges import PartitionRange, TopicRange
>>> profiles = Table("profiles", Entity("member", "member_id"), [TableFeature("country", "country")])
>>> held = [(0, 1_000, {"member_id": "m2", "country": "PT"}),   # offset 1 (m1, DE) was compacted away
...         (2, 5_000, {"member_id": "m1", "country": "FR"})]
>>> gaps = Gaps(TopicRange("profiles", [PartitionRange(0, 0, 3)]), compacted=True)
>>> gaps.see(0, [offset for offset, _, _ in held], [arrival for _, arrival, _ in held])
>>> gaps.found
{0: Gap(offset=1, after=1000, cause='compaction')}
>>> source = events_table(FeatureSet(tables=[profiles]), "profiles", [
...     {"partition": 0, "offset": o, "arrival": a, "value": v} for o, a, v in held])
>>> spine = pa.table({"entity": ["m1", "m1", "m1", "m2", "m3"], "at": [500, 2_000, 5_000, 500, 2_000]})
>>> missing = MissingHistory.of(profiles, source, gaps, spine)
>>> missing.rows.tolist()  # m1 at 2 s: DE was served then, and is gone
[False, True, False, False, False]
>>> missing.count, missing.covered_from
(1, 5000)
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from loopline.features.declarations import Table
from loopline.features.offline.events import entity_column
from loopline.features.offline.sql import quote
from loopline.stream.ranges import TopicRange

__all__ = ["Gap", "Gaps", "MissingHistory", "per_topic", "refusal"]


@dataclass(frozen=True)
class Gap:
    """The first offset of a partition without a record, and the arrival (log timestamp) of
    the record held just before it (None: none is, so what is missing may be of any time)."""

    offset: int
    after: int | None
    cause: str  # "compaction" or "retention"


class Gaps:
    """The first `Gap` of every partition of a topic, found as its records are read.

    Give `see` every record read (decodable or not), per partition in offset
    order, as `loopline.stream.ranges.read_ranges` hands them over. A
    partition whose pinned range starts after offset 0 lost its first records
    to retention. Other gaps count only on a compacted topic (`compacted`): on
    a topic that deletes by age a gap is a transaction's marker or an aborted
    record, never a removed value. Offsets missing after a partition's last
    record are not looked for: they cannot precede any record held.
    """

    def __init__(self, ranges: TopicRange, *, compacted: bool) -> None:
        self.compacted = compacted
        self.found: dict[int, Gap] = {}
        self._next: dict[int, int] = {}
        self._last: dict[int, int] = {}  # arrival of the last record seen, per partition
        for p in ranges.partitions:
            if p.start > 0:
                self.found[p.partition] = Gap(0, None, "retention")
            self._next[p.partition] = p.start

    def see(self, partition: int, offsets: Sequence[int], arrivals: Sequence[int]) -> None:
        """Records of `partition`, the next ones in offset order (strictly increasing)."""
        if not offsets or partition in self.found or not self.compacted:
            return
        expected, n = self._next[partition], len(offsets)
        if offsets[0] == expected and offsets[-1] == expected + n - 1:  # no gap among them
            self._next[partition] = offsets[-1] + 1
            self._last[partition] = arrivals[-1]
            return
        shifted = np.asarray(offsets, np.int64) != np.arange(expected, expected + n)
        i = int(np.argmax(shifted))
        after = arrivals[i - 1] if i else self._last.get(partition)
        self.found[partition] = Gap(expected + i, after, "compaction")


@dataclass(frozen=True)
class MissingHistory:
    """The spine rows of one `Table` whose value the topic no longer holds (`rows`, per spine
    row), and from when on it holds the history of all their entities (`covered_from`: the
    latest of their first held records' arrivals, epoch ms; None when no row is missing)."""

    table: Table
    rows: np.ndarray
    covered_from: int | None
    causes: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return int(self.rows.sum())

    @classmethod
    def of(cls, table: Table, source: pa.Table, gaps: Gaps, spine: pa.Table) -> MissingHistory:
        """The rows of `spine` (``entity``, ``at`` columns) that `table` cannot answer from
        `source` (its topic's `events_table`) because records before `gaps` are gone."""
        rows = np.zeros(spine.num_rows, bool)
        if not gaps.found or not source.num_rows or not spine.num_rows:
            return cls(table, rows, None)
        column = entity_column(source, table.key_field)
        entity = quote(column)
        found = pa.table(
            {
                "partition": [p for p in gaps.found],
                "gap": [g.offset for g in gaps.found.values()],
                "after": pa.array([g.after for g in gaps.found.values()], pa.int64()),
                "cause": [g.cause for g in gaps.found.values()],
            }
        )
        keys = pa.table(
            {
                "__row": np.arange(spine.num_rows, dtype=np.int64),
                "entity": spine.column("entity").cast(pa.string()),
                "at": spine.column("at").cast(pa.int64()),
            }
        )
        with duckdb.connect() as con:
            con.register("__source", source.select(["partition", "offset", "arrival", column]))
            con.register("__gaps", found)
            con.register("__spine", keys)
            hit = con.sql(
                f"""
                WITH first AS (
                    SELECT DISTINCT ON ({entity}) {entity} AS entity, partition, "offset", arrival
                    FROM __source WHERE {entity} IS NOT NULL
                    ORDER BY {entity}, arrival, partition, "offset"
                )
                SELECT s.__row, f.arrival, g.cause
                FROM __spine s JOIN first f ON s.entity = f.entity
                JOIN __gaps g ON g.partition = f.partition
                WHERE s."at" < f.arrival AND g.gap < f."offset"
                      AND (g.after IS NULL OR g.after <= s."at")
                """
            ).to_arrow_table()
        if not hit.num_rows:
            return cls(table, rows, None)
        rows[hit.column("__row").to_numpy()] = True
        causes = tuple(sorted(set(hit.column("cause").to_pylist())))
        return cls(table, rows, int(max(hit.column("arrival").to_pylist())), causes)


def per_topic(missing: Sequence[MissingHistory]) -> dict[str, int]:
    """Rows whose history is gone, per table topic, as the manifest records them (a row counts
    once however many tables of one topic miss it)."""
    rows: dict[str, np.ndarray] = {}
    for m in missing:
        topic = m.table.source
        rows[topic] = m.rows if topic not in rows else rows[topic] | m.rows
    return {topic: int(found.sum()) for topic, found in sorted(rows.items())}


_CAUSES = {
    "compaction": "the topic is compacted: compaction keeps only the latest record of a key",
    "retention": "retention deleted the topic's oldest records",
}


def refusal(missing: Sequence[MissingHistory], spine_rows: int) -> str:
    """The one-line error of a build refused because `missing` rows lack their history.

    >>> from loopline.features import Entity, Table
    >>> table = Table("profiles", Entity("member", "member_id"), [])
    >>> print(refusal([MissingHistory(table, np.array([True, False]), 1_700_000_000_000,
    ...                               ("compaction",))], 2))
    ... # doctest: +NORMALIZE_WHITESPACE
    table of topic 'profiles': 1 of 2 spine rows need history the topic no longer holds (their
    instants are before the first record it holds for their entity, and the topic is compacted:
    compaction keeps only the latest record of a key); it holds the history of those
    entities from 2023-11-14T22:13:20Z on. What is gone cannot come back: keep a table's
    history in a topic that is not compacted (loopline topics create NAME, without --compact),
    start the spine at that instant, or build with --allow-missing-history (loopline dataset
    build, loopline train --spine) to give those rows the features' defaults
    """
    parts = [
        f"table of topic {m.table.source!r}: {m.count} of {spine_rows} spine rows need history "
        "the topic no longer holds (their instants are before the first record it holds for "
        f"their entity, and {' and '.join(_CAUSES[c] for c in m.causes)}); it holds the history "
        f"of those entities from {iso(m.covered_from)} on"
        for m in missing
        if m.count
    ]
    return (
        "; ".join(parts) + ". What is gone cannot come back: keep a table's history in a topic "
        "that is not compacted (loopline topics create NAME, without --compact), start the "
        "spine at that instant, or build with --allow-missing-history (loopline dataset build, "
        "loopline train --spine) to give those rows the features' defaults"
    )


def iso(ms: int | None) -> str:
    """Epoch milliseconds as ISO 8601 UTC text, to the second.

    >>> iso(1_700_000_000_000)
    '2023-11-14T22:13:20Z'
    """
    if ms is None:
        return "the start"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
