"""Dead letters: records that broke their contract, set aside with the reason, never lost.

A record that cannot be decoded or validated goes to ``<topic>.dlq`` with its
original key, value and headers, plus headers that say why, where it came
from and which contract version was expected. `inspect` lists them; `replay`
sends the ones that now pass (after the contract was fixed) back to their
topic and keeps the rest.

>>> from loopline.log import Record
>>> record = Record("clicks", 2, 41, 1_700_000_000_000, b"m-1", b"{oops")
>>> key, value, headers = dead_letter(record, "not valid JSON", "clicks", 3)
>>> letter = DeadLetter.from_record(Record("clicks.dlq", 0, 0, 0, key, value, headers))
>>> letter.reason, letter.source_topic, letter.source_offset, letter.contract
('not valid JSON', 'clicks', 41, 'clicks v3')
>>> letter.record.key, letter.timestamp  # what a replay gives the record back
(b'm-1', 1700000000000)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from loopline.log import Headers, Record
from loopline.stream import names

SUFFIX = names.DLQ_SUFFIX
REASON = "loopline.dlq.reason"
SOURCE_TOPIC = "loopline.dlq.topic"
SOURCE_PARTITION = "loopline.dlq.partition"
SOURCE_OFFSET = "loopline.dlq.offset"
CONTRACT = "loopline.dlq.contract"
DEAD_AT = "loopline.dlq.time"
# The record's own timestamp: the dead letter is stamped when it was set aside (so retention
# counts from then), and a replay gives the record its own time back.
TIMESTAMP = "loopline.dlq.timestamp"
_OURS = (REASON, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, CONTRACT, DEAD_AT, TIMESTAMP)


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of `topic`."""
    return names.dead_letters(topic)


def dead_letter(
    record: Record | None,
    reason: str,
    contract: str | None,
    version: int | None,
    *,
    key: bytes | None = None,
    value: bytes | None = None,
    source: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes | None, bytes | None, Headers]:
    """Key, value and headers of the dead letter for `record` (or for a raw key/value at the edge).

    The record's key and headers stay its own; its timestamp (or `timestamp`
    at the edge, the event time of a row) goes in a header, for a replay.
    """
    headers: list[tuple[str, bytes]] = [
        (REASON, reason.encode()),
        (DEAD_AT, str(time.time_ns() // 1_000_000).encode()),
    ]
    if contract is not None:
        headers.append((CONTRACT, f"{contract} v{version}".encode()))
    if record is not None:
        headers += [
            (SOURCE_TOPIC, record.topic.encode()),
            (SOURCE_PARTITION, str(record.partition).encode()),
            (SOURCE_OFFSET, str(record.offset).encode()),
            (TIMESTAMP, str(record.timestamp).encode()),
        ]
        return record.key, record.value, (*_theirs(record.headers), *headers)
    if timestamp is not None:
        headers.append((TIMESTAMP, str(timestamp).encode()))
    if source is not None:
        headers.append((SOURCE_TOPIC, source.encode()))
    return key, value, tuple(headers)


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as read back: the original record and why it was set aside."""

    record: Record
    reason: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    contract: str | None
    dead_at: int | None
    timestamp: int | None = None  # the record's own, where known

    @classmethod
    def from_record(cls, record: Record) -> DeadLetter:
        h = {
            name: value.decode(errors="replace") for name, value in record.headers if name in _OURS
        }
        return cls(
            record=record,
            reason=h.get(REASON, "(no reason recorded)"),
            source_topic=h.get(SOURCE_TOPIC),
            source_partition=int(h[SOURCE_PARTITION]) if SOURCE_PARTITION in h else None,
            source_offset=int(h[SOURCE_OFFSET]) if SOURCE_OFFSET in h else None,
            contract=h.get(CONTRACT),
            dead_at=int(h[DEAD_AT]) if DEAD_AT in h else None,
            timestamp=int(h[TIMESTAMP]) if TIMESTAMP in h else None,
        )

    @property
    def original_headers(self) -> Headers:
        return _theirs(self.record.headers)


def _theirs(headers: Headers) -> Headers:
    """`headers` without ours: a letter dead-lettered again gets one set of reasons, not two."""
    return tuple((n, v) for n, v in headers if n not in _OURS)
