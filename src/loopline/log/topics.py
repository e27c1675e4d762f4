"""Topic settings and descriptions, shared by every backend.

>>> parse_duration("7d")
604800000
>>> parse_duration("90s"), parse_duration("250ms"), parse_duration("forever")
(90000, 250, None)
>>> parse_size("1GiB"), parse_size("500MB"), parse_size("4096")
(1073741824, 500000000, 4096)
>>> TopicConfig(partitions=3, compact=True).cleanup_policy
'compact'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loopline.log.errors import InvalidTopicConfig

_DURATION_UNITS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_FOREVER = {"forever", "infinite", "none", "-1"}


def _quantity(text: str | int | None, units: dict[str, int], example: str, what: str) -> int | None:
    if text is None or isinstance(text, int):
        return None if text is None or text < 0 else text
    if text.strip().lower() in _FOREVER:
        return None
    m = _QUANTITY.match(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in units:
        raise InvalidTopicConfig(f"cannot read {what} {text!r}: use {example}")
    return int(float(m.group(1)) * units[unit])


def parse_duration(text: str | int | None) -> int | None:
    """Milliseconds in `text` (`250ms`, `90s`, `10m`, `1h`, `7d`, `2w`); None for forever."""
    return _quantity(
        text, _DURATION_UNITS, "a number and a unit, e.g. 500ms, 30s, 10m, 1h, 7d", "duration"
    )


def parse_size(text: str | int | None) -> int | None:
    """Bytes in `text` (`4096`, `500MB`, `1GiB`); None for unlimited."""
    return _quantity(text, _SIZE_UNITS, "e.g. 4096, 500MB or 1GiB", "size")


@dataclass(frozen=True)
class TopicConfig:
    """How a topic is created.

    `compact=True` keeps the latest value of every key (a table); otherwise old
    records are deleted by `retention_ms` (age) and `retention_bytes` (size per
    partition), None meaning forever. `extra` passes backend settings through
    unchanged (on Kafka, any topic config such as `segment.ms`).
    """

    partitions: int = 1
    compact: bool = False
    retention_ms: int | None = None
    retention_bytes: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise InvalidTopicConfig(f"a topic needs at least 1 partition, got {self.partitions}")
        for name in ("retention_ms", "retention_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidTopicConfig(f"{name} must be positive or None (forever), got {value}")

    @property
    def cleanup_policy(self) -> str:
        return "compact" if self.compact else "delete"


@dataclass(frozen=True)
class PartitionInfo:
    """Offsets of one partition: `start` is the first offset still held, `end` the next one."""

    partition: int
    start: int
    end: int

    @property
    def records(self) -> int:
        """Upper bound on records held (exact unless compaction or aborted transactions left gaps)."""
        return self.end - self.start


@dataclass(frozen=True)
class TopicInfo:
    """What `describe_topic` answers.

    `id` is given to the topic when it is created and never to another: a
    topic deleted and created again under the same name has a new one (on
    Kafka the topic id, on the embedded log the topic's row id). State kept
    about a topic's records (how far an ingest got) is keyed on it, so that it
    does not outlive the records it describes.
    """

    name: str
    config: TopicConfig
    partitions: tuple[PartitionInfo, ...]
    id: str = ""


_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def validate_topic_name(name: str) -> str:
    """Return `name` if Kafka accepts it as a topic name, else raise `InvalidTopicConfig`.

    >>> validate_topic_name("member.events-v2")
    'member.events-v2'
    """
    if not _TOPIC_NAME.match(name or "") or name in (".", ".."):
        raise InvalidTopicConfig(
            f"invalid topic name {name!r}: use 1 to 249 letters, digits, '.', '_' or '-'"
        )
    return name
