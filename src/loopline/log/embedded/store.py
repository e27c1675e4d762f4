"""The embedded log's storage: one SQLite database in WAL mode, in the log directory.

Why SQLite (docs/decisions/0002): atomic multi-row transactions (records plus
consumer offsets in one commit: exactly-once comes free), crash safety under
``kill -9`` (no torn records, offsets that never repeat), and safe concurrent
use by several processes, all from the standard library. Records are stored
in batches (`batches.py`) so the per-record cost stays in C.

Tables:

- ``topics``: name, id (never reused), partitions, cleanup policy, retention, extra config;
- ``partitions``: per topic partition the first offset held and the next offset to assign;
- ``batches``: the records, one row per batch, indexed by (topic, partition, last offset);
- ``group_offsets``: committed offsets per consumer group;
- ``group_members``: the live member of each group (one per group on this backend);
- ``producer_epochs``: epochs of transactional ids, to fence a zombie producer.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loopline.log.errors import LogUnavailable, TopicNotFound
from loopline.log.topics import TopicConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    compact INTEGER NOT NULL,
    retention_ms INTEGER,
    retention_bytes INTEGER,
    extra TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    topic_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    topic_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    count INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS batches_by_offset ON batches (topic_id, partition, last_offset);
CREATE TABLE IF NOT EXISTS group_offsets (
    group_name TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (
    group_name TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS producer_epochs (
    transactional_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL
);
"""

DB_FILE = "log.db"


@dataclass(frozen=True)
class TopicMeta:
    """A topic as stored: its id (never reused, so a re-created topic is a new one) and config."""

    id: int
    name: str
    config: TopicConfig


class Store:
    """One connection to the log database, safe to share between threads of a process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path / DB_FILE, isolation_level=None, check_same_thread=False, timeout=60.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so an acknowledged batch survives
            # a power loss as well as a kill -9.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA mmap_size=268435456")
            self._db.execute("PRAGMA cache_size=-65536")
            with self.write():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise LogUnavailable(
                f"cannot open the embedded log at {self.path}: {exc}. "
                "Check that the directory is writable, or pass another with --log embedded:PATH"
            ) from exc

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: other writers wait; everything inside commits or nothing does."""
        with self.lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):  # the first error is the one to tell
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                # Read-only files, a full disk, a lock held too long: the log, not a bug.
                raise LogUnavailable(
                    f"cannot write to the embedded log at {self.path}: {exc}. Check that its "
                    "files are writable and the disk has room, or pass another with "
                    "--log embedded:PATH"
                ) from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot of the log."""
        with self.lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap 'is there anything new?'."""
        with self.lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    def topic(self, name: str) -> TopicMeta:
        with self.lock:
            row = self._db.execute(
                "SELECT id, partitions, compact, retention_ms, retention_bytes, extra "
                "FROM topics WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            raise TopicNotFound(name)
        return _meta(name, row)

    def topics(self) -> list[TopicMeta]:
        with self.lock:
            rows = self._db.execute(
                "SELECT id, partitions, compact, retention_ms, retention_bytes, extra, name "
                "FROM topics ORDER BY name"
            ).fetchall()
        return [_meta(row[6], row[:6]) for row in rows]

    def close(self) -> None:
        with self.lock:
            self._db.close()


def _meta(name: str, row: tuple) -> TopicMeta:
    topic_id, partitions, compact, retention_ms, retention_bytes, extra = row
    return TopicMeta(
        topic_id,
        name,
        TopicConfig(
            partitions=partitions,
            compact=bool(compact),
            retention_ms=retention_ms,
            retention_bytes=retention_bytes,
            extra=json.loads(extra),
        ),
    )
