"""The changelog: how online feature state is kept in the log, and read back.

The stream processor keeps one state per source partition (a *unit*:
decision 0008 decides lateness per partition, so a partition's records are
all a unit's state depends on). Every change is written to a compacted
changelog topic per source, to the partition of the same number, in the same
transaction as the input offsets, so the changelog and the offsets can never
disagree (exactly-once).

Keys of a changelog partition:

- ``m`` — the unit's meta data (clock, watermarks, counters) and the oldest
  append time of the input records the transaction covered (for freshness);
- ``a<i>/<entity>`` — the entity's state of ``features.aggregations[i]``;
- ``t<i>/<entity>`` — the entity's row of ``features.tables[i]``;

a tombstone removes an entity. Values are msgpack.

>>> names = ChangelogNames("shop", "0123456789abcdef")
>>> names.changelog("clicks"), names.group, names.late
('shop.features.0123456789.clicks.changelog', 'shop.features.0123456789', 'shop.features.late')
>>> entry_key("a", 0, "m-1"), parse_key(b"a0/m-1")
(b'a0/m-1', ('a', 0, 'm-1'))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from loopline.log import Log, LogError, TopicConfig, TopicExists
from loopline.stream import names

META = b"m"

# Kafka compacts only closed segments, and closes one at `segment.bytes` (1 GiB by default):
# a changelog below that was never compacted, and a store catching up read every change
# ever written. Segments of 32 MiB let the cleaner keep up (decision 0044). The embedded
# log compacts by its own rule and ignores this.
CHANGELOG_CONFIG = {"segment.bytes": str(32 << 20)}

encode = msgspec.msgpack.Encoder().encode
decode = msgspec.msgpack.Decoder().decode


@dataclass(frozen=True)
class ChangelogNames:
    """The topics and consumer group of one application's online features.

    The feature declarations' fingerprint is part of the changelog and group
    names: changed declarations start from a clean state and recompute from
    the sources, instead of reading state computed for other features.
    """

    app: str
    fingerprint: str

    @property
    def group(self) -> str:
        """The consumer group of the processors (on Kafka: many members split the sources)."""
        return names.features_group(self.app, self.fingerprint)

    @property
    def late(self) -> str:
        """Where records that arrived too late to count go, with the reason in headers."""
        return names.features_late(self.app)

    def changelog(self, source: str) -> str:
        """The changelog topic of the units of `source` (partition p: source partition p)."""
        return names.features_changelog(self.app, self.fingerprint, source)


def entry_key(kind: str, index: int, entity: str) -> bytes:
    return f"{kind}{index}/{entity}".encode()


def parse_key(key: bytes) -> tuple[str, int, str] | None:
    """(kind, index, entity) of an entry key; None for the meta key."""
    if key == META:
        return None
    head, _, entity = key.decode().partition("/")
    return head[0], int(head[1:]), entity


def meta_value(meta: dict[str, Any], oldest_append: int | None, offset: int | None = None) -> bytes:
    """The meta entry; `offset` is the source partition's next offset to process (the one
    committed with it), which tells an online store how far its features reflect the source.

    >>> decode(meta_value({"clock": 5}, None, 42))
    {'clock': 5, 'oldest_append': None, 'offset': 42}
    """
    return encode({**meta, "oldest_append": oldest_append, "offset": offset})


def ensure_changelogs(log: Log, names: ChangelogNames, sources: Iterable[str]) -> list[str]:
    """Create the changelog topic of each source (as many partitions, compacted); their names.

    Raises `LogError` naming the source when a source topic does not exist.
    """
    topics = []
    for source in sources:
        try:
            info = log.describe_topic(source)
        except LogError as exc:
            raise LogError(
                f"feature source topic {source!r} cannot be read ({exc}): "
                f"create it first (loopline topics create {source})"
            ) from None
        topic = names.changelog(source)
        with contextlib.suppress(TopicExists):
            log.create_topic(
                topic,
                TopicConfig(
                    partitions=len(info.partitions), compact=True, extra=dict(CHANGELOG_CONFIG)
                ),
            )
        topics.append(topic)
    return topics
