"""The embedded log (``embedded:PATH``): a durable log in a local directory, no server.

It keeps the whole log contract on one machine: several processes may share a
directory (producers, and consumers of different groups); every acknowledged
record survives ``kill -9``. Where it stops short of Kafka (one live member
per consumer group, one machine) it says so and names Kafka as the way out.

>>> import tempfile
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> log.create_topic("members", TopicConfig(partitions=3))
>>> log.describe_topic("members").partitions[0]
PartitionInfo(partition=0, start=0, end=0)
>>> log.close()
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from loopline.log.embedded import groups
from loopline.log.embedded.cleaner import compact
from loopline.log.embedded.consumer import EmbeddedConsumer
from loopline.log.embedded.producer import EmbeddedProducer
from loopline.log.embedded.store import Store
from loopline.log.errors import TopicExists, TopicNotFound
from loopline.log.protocol import Reset
from loopline.log.records import TopicPartition
from loopline.log.topics import PartitionInfo, TopicConfig, TopicInfo, validate_topic_name

__all__ = ["EmbeddedConsumer", "EmbeddedLog", "EmbeddedProducer"]


class EmbeddedLog:
    """A log in the directory `path` (see `loopline.log.protocol.Log`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.url = "embedded:" + self.path
        self.local = True
        self._store = Store(path)

    def __repr__(self) -> str:
        return f"EmbeddedLog({self.path!r})"

    def create_topic(self, name: str, config: TopicConfig | None = None) -> None:
        validate_topic_name(name)
        config = config or TopicConfig()
        with self._store.write() as db:
            if db.execute("SELECT 1 FROM topics WHERE name = ?", (name,)).fetchone():
                raise TopicExists(name)
            cursor = db.execute(
                "INSERT INTO topics (name, partitions, compact, retention_ms, retention_bytes, extra) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    name,
                    config.partitions,
                    int(config.compact),
                    config.retention_ms,
                    config.retention_bytes,
                    json.dumps(dict(config.extra), sort_keys=True),
                ),
            )
            db.executemany(
                "INSERT INTO partitions (topic_id, partition, start_offset, next_offset) "
                "VALUES (?, ?, 0, 0)",
                [(cursor.lastrowid, p) for p in range(config.partitions)],
            )

    def describe_topic(self, name: str) -> TopicInfo:
        meta = self._store.topic(name)
        with self._store.lock:
            rows = self._store.db.execute(
                "SELECT partition, start_offset, next_offset FROM partitions "
                "WHERE topic_id = ? ORDER BY partition",
                (meta.id,),
            ).fetchall()
        return TopicInfo(
            name, meta.config, tuple(PartitionInfo(*row) for row in rows), id=str(meta.id)
        )

    def list_topics(self) -> list[str]:
        return [meta.name for meta in self._store.topics()]

    def delete_topic(self, name: str) -> None:
        with self._store.write() as db:
            row = db.execute("SELECT id FROM topics WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise TopicNotFound(name)
            for table in ("batches", "partitions"):
                db.execute(f"DELETE FROM {table} WHERE topic_id = ?", (row[0],))
            db.execute("DELETE FROM topics WHERE id = ?", (row[0],))
            db.execute("DELETE FROM group_offsets WHERE topic = ?", (name,))

    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        return groups.offsets_of(self._store, group)

    def producer(self, *, transactional_id: str | None = None) -> EmbeddedProducer:
        return EmbeddedProducer(self._store, transactional_id=transactional_id)

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        reset: Reset = "latest",
        read_committed: bool = True,
    ) -> EmbeddedConsumer:
        # Records of a transaction reach the database only when it commits, so every
        # embedded consumer reads committed data; `read_committed` needs no switch here.
        return EmbeddedConsumer(self._store, group, topics, reset=reset)

    def compact(self, topic: str) -> int:
        """Compact every partition of a compacted topic now; return records dropped."""
        meta = self._store.topic(topic)
        return sum(compact(self._store, meta, p) for p in range(meta.config.partitions))

    def close(self) -> None:
        self._store.close()
