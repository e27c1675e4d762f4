"""How far a consumer has read: positions per partition, and records held back.

`KafkaConsumer` keeps its own positions instead of asking librdkafka, because it
returns fewer records than librdkafka handed it in two cases: records fetched
while the consumer joined its group (held until the first `poll`), and records
of a partition that was paused after they were fetched (held until `resume`).
The position of a partition is the offset after the last record *returned*.

>>> from loopline.log.records import Record
>>> progress = Progress(["clicks"])
>>> progress.assign({TopicPartition("clicks", 0): 40})
>>> progress.returned([Record("clicks", 0, 40, 0, None, b"a"), Record("clicks", 0, 41, 0, None, b"b")])
>>> progress.positions
{TopicPartition(topic='clicks', partition=0): 42}
>>> progress.end_seen(("clicks", 0), 43)  # e.g. a transaction marker at 42
>>> progress.apply_ends()
>>> progress.commit_offsets()
{TopicPartition(topic='clicks', partition=0): 43}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from loopline.log.records import Record, TopicPartition

Key = tuple[str, int]


class Progress:
    """Positions, commit candidates, paused partitions and held records of one consumer."""

    def __init__(self, topics: Collection[str] = ()) -> None:
        # With one topic, positions are found by partition alone: no tuple per record.
        self._topic = next(iter(topics)) if len(topics) == 1 else None
        # The assignment: partition -> offset of the next record to return (None: not known yet).
        self.positions: dict[TopicPartition, int | None] = {}
        # Partitions that poll returned records from or that were seeked: commit()'s default.
        self.moved: set[Key] = set()
        self.paused: set[TopicPartition] = set()
        # Fetched, not yet returned, in fetch order.
        self.held: list[Record] = []
        # Ends of partitions reported by librdkafka, applied once nothing before them is held.
        self.ends: dict[Key, int] = {}

    def assign(self, starts: Mapping[TopicPartition, int | None]) -> None:
        """Partitions added to the assignment, with their start offsets."""
        self.positions.update(starts)

    def revoke(self, partitions: Collection[Key]) -> None:
        """Partitions removed from the assignment: forget them and drop what is held of them."""
        for key in partitions:
            self.positions.pop(key, None)  # type: ignore[call-overload]
            self.moved.discard(key)
            self.paused.discard(key)  # type: ignore[arg-type]
            self.ends.pop(key, None)
        self.drop_held(partitions)

    def drop_held(self, partitions: Collection[Key]) -> None:
        """Forget the held records of `partitions` (they will be fetched again)."""
        if self.held:
            self.held = [r for r in self.held if (r[0], r[1]) not in partitions]

    def seeked(self, partition: TopicPartition, offset: int) -> None:
        """Reading of `partition` continues at `offset`."""
        self.drop_held((partition,))
        self.positions[partition] = offset
        self.moved.add(partition)
        self.ends.pop(partition, None)

    def returned(self, records: list[Record]) -> None:
        """`records` go to the caller: positions move past them."""
        positions = self.positions
        topic = self._topic
        if topic is not None:
            last = {(topic, p): o for p, o in {r[1]: r[2] for r in records}.items()}
        else:
            last = {(r[0], r[1]): r[2] for r in records}
        for key, offset in last.items():
            if key in positions:
                positions[key] = offset + 1  # type: ignore[index]
                self.moved.add(key)

    def take_held(self, max_records: int) -> list[Record]:
        """Up to `max_records` held records of partitions not paused, in fetch order."""
        paused = self.paused
        if not paused:
            records = self.held[:max_records]
            del self.held[:max_records]
            return records
        records: list[Record] = []
        kept: list[Record] = []
        for r in self.held:
            if len(records) < max_records and (r[0], r[1]) not in paused:
                records.append(r)
            else:
                kept.append(r)
        self.held = kept
        return records

    def hold_paused(self, records: list[Record]) -> list[Record]:
        """`records` without those of paused partitions, which are held."""
        paused = self.paused
        held = [r for r in records if (r[0], r[1]) in paused]
        if not held:
            return records
        self.held.extend(held)
        return [r for r in records if (r[0], r[1]) not in paused]

    def end_seen(self, key: Key, offset: int) -> None:
        """librdkafka reached the end of a partition: the next record will be at `offset` or later."""
        self.ends[key] = offset

    def apply_ends(self) -> None:
        """Move positions to the partition ends seen, where no record before the end is held.

        The end can be past the last record returned: transaction markers take
        offsets, and records of aborted transactions are skipped.
        """
        held = {(r[0], r[1]) for r in self.held}
        positions = self.positions
        for key, end in list(self.ends.items()):
            if key in held:
                continue
            del self.ends[key]
            if key in positions:
                position = positions[key]  # type: ignore[index]
                if position is None or end > position:
                    positions[key] = end  # type: ignore[index]

    def commit_offsets(self) -> dict[TopicPartition, int]:
        """What `commit()` stores by default: the position of each partition read or seeked."""
        chosen: dict[TopicPartition, int] = {}
        for key in self.moved:
            position = self.positions.get(key)  # type: ignore[call-overload]
            if position is not None:
                chosen[TopicPartition(key[0], key[1])] = position
        return chosen
