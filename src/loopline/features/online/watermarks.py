"""Watermarks: how far event time has got in each partition, and which records are late."""

from __future__ import annotations


class Watermarks:
    """The watermark of each partition of a source: the largest event time seen so far.

    A record is late when its event time is more than `lateness` behind the
    watermark of the records before it in its partition (docs/decisions/0008);
    the first record of a partition is never late. Ask `is_late` first, then
    `observe` the record, late or not.

    >>> marks = Watermarks()
    >>> marks.is_late(0, 5_000, lateness=1_000)
    False
    >>> marks.observe(0, 5_000)
    >>> marks.is_late(0, 3_999, lateness=1_000), marks.is_late(0, 4_000, lateness=1_000)
    (True, False)
    >>> marks.is_late(1, 0, lateness=0)  # each partition has its own watermark
    False
    """

    def __init__(self, marks: dict[int, int] | None = None) -> None:
        self._marks: dict[int, int] = dict(marks or {})

    def get(self, partition: int) -> int | None:
        """The watermark of `partition`; None before its first record."""
        return self._marks.get(partition)

    def is_late(self, partition: int, event_time: int, lateness: int) -> bool:
        mark = self._marks.get(partition)
        return mark is not None and event_time < mark - lateness

    def observe(self, partition: int, event_time: int) -> None:
        mark = self._marks.get(partition)
        if mark is None or event_time > mark:
            self._marks[partition] = event_time

    def dump(self) -> dict[str, int]:
        """The watermarks as JSON-ready data (partitions as strings)."""
        return {str(p): mark for p, mark in self._marks.items()}

    @classmethod
    def load(cls, data: dict[str, int]) -> Watermarks:
        return cls({int(p): mark for p, mark in data.items()})
