"""The decision backlog: a local, bounded, durable journal of decisions not yet on the log.

Every decision the prediction service makes is appended here before its
answer leaves (group commit: one write for the decisions of all the requests
that arrived meanwhile), and waits until the log acknowledged it: encoded
records (key, value, timestamp) in an SQLite file, committed with
``synchronous=FULL`` before `append` returns, so they survive a crash of the
process or of the machine, and an outage of the log. They leave, oldest
first, only after the log acknowledged them (`peek`, send, commit, then
`remove`); the decision log looks for a crash between the last two when it
starts (`loopline.serving.decision_log`).

The buffer is bounded by `max_bytes` of record values; `append` refuses what
does not fit (and says how much), so a long outage fills a disk partition no
further than the operator allowed.

>>> import tempfile
>>> backlog = Backlog(tempfile.mkdtemp() + "/decisions.db", max_bytes=10)
>>> backlog.append([(b"m-1", b"one", 1), (b"m-2", b"two", 2)])
2
>>> backlog.append([(b"m-3", b"too long", 3)])
0
>>> len(backlog), backlog.bytes
(2, 6)
>>> rows = backlog.peek(10)
>>> [value for _, _, value, _ in rows]
[b'one', b'two']
>>> backlog.remove(rows[-1][0]); len(backlog)
0
>>> backlog.close()
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Backlog", "Encoded"]

Encoded = tuple[bytes | None, bytes, int | None]
"""A record ready for the log: key, value and timestamp (ms)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backlog (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key BLOB,
    value BLOB NOT NULL,
    timestamp INTEGER
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)
"""


class Backlog:
    """Encoded records waiting for the log, oldest first, in an SQLite file at `path`."""

    def __init__(self, path: str | Path, *, max_bytes: int = 1 << 30) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA.split(";"):
            self._db.execute(statement)
        self._db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('identity', ?)", (uuid.uuid4().hex,)
        )
        self.identity: str = self._db.execute(
            "SELECT value FROM meta WHERE name = 'identity'"
        ).fetchone()[0]
        """Made when the file is: names this journal (and its writer) across restarts."""
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM backlog"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """Bytes of record values held."""
        return self._bytes

    def append(self, records: Sequence[Encoded]) -> int:
        """Keep `records` durably, in order; return how many fit under `max_bytes`.

        Records that do not fit are not kept (the caller counts them as dropped).
        """
        with self._lock:
            room = self.max_bytes - self._bytes
            taken = []
            for record in records:
                if len(record[1]) > room:
                    break
                room -= len(record[1])
                taken.append(record)
            if taken:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.executemany(
                        "INSERT INTO backlog (key, value, timestamp) VALUES (?, ?, ?)", taken
                    )
                self._count += len(taken)
                self._bytes += sum(len(value) for _, value, _ in taken)
            return len(taken)

    def peek(self, limit: int) -> list[tuple[int, bytes | None, bytes, int | None]]:
        """The oldest `limit` records as (sequence number, key, value, timestamp)."""
        with self._lock:
            return self._db.execute(
                "SELECT seq, key, value, timestamp FROM backlog ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()

    def remove(self, up_to: int) -> None:
        """Forget every record up to sequence number `up_to` (they reached the log)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM backlog WHERE seq <= ?",
                (up_to,),
            ).fetchone()
            self._db.execute("DELETE FROM backlog WHERE seq <= ?", (up_to,))
            self._count -= int(count)
            self._bytes -= int(size)

    def close(self) -> None:
        with self._lock:
            self._db.close()
