"""The unit of the log: a record, and the address of a partition.

A `Record` is what a consumer receives. It is a named tuple so that a batch of
records is built at C speed and unpacks like any tuple:

>>> r = Record("clicks", 0, 41, 1_700_000_000_000, b"member-42", b'{"item": 7}')
>>> r.offset, r.key
(41, b'member-42')
>>> r.headers
()
>>> topic, partition, *_ = r
>>> TopicPartition(topic, partition)
TopicPartition(topic='clicks', partition=0)
"""

from __future__ import annotations

from typing import NamedTuple

Headers = tuple[tuple[str, bytes], ...]
"""A record's headers: (name, value) pairs, in order; a name may repeat."""

# Kafka refuses a record stamped more than this far ahead of the broker's clock
# (`message.timestamp.after.max.ms`, one hour by default since Kafka 4.0). Both
# backends refuse it at `send`, so an application behaves the same on either.
MAX_FUTURE_MS = 3_600_000


def timestamp_problem(timestamp: int, now_ms: int) -> str | None:
    """Why a log cannot take a record stamped `timestamp` (ms) at `now_ms`, or None.

    >>> timestamp_problem(1_700_000_000_000, 1_700_000_000_000) is None
    True
    >>> timestamp_problem(0, 1_700_000_000_000)
    'timestamp 0 is not a time after 1970 (milliseconds since the epoch, > 0)'
    """
    if timestamp <= 0:
        return f"timestamp {timestamp} is not a time after 1970 (milliseconds since the epoch, > 0)"
    if timestamp > now_ms + MAX_FUTURE_MS:
        hours = (timestamp - now_ms) / 3_600_000
        return (
            f"timestamp {timestamp} is {hours:,.1f} hours in the future; the log refuses records "
            "more than 1 hour ahead of its clock (Kafka's message.timestamp.after.max.ms)"
        )
    return None


class TopicPartition(NamedTuple):
    """One partition of one topic: the unit of ordering, offsets and assignment."""

    topic: str
    partition: int


class Record(NamedTuple):
    """A record as read from the log.

    `key` is None for an unkeyed record; `value` is None for a tombstone (a delete
    marker in a compacted topic). `timestamp` is milliseconds since the epoch, the
    event time given by the producer or the append time set by the log.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)
