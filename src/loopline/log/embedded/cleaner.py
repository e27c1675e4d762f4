"""Retention and compaction of the embedded log, run by producers after they append.

- ``delete`` topics drop their oldest batches once older than ``retention_ms``
  or beyond ``retention_bytes`` per partition (whole batches, as Kafka drops
  whole segments);
- ``compact`` topics are rewritten, once enough has been appended since the
  last pass (``min.cleanable.dirty.ratio``, default 0.5), keeping the latest
  record of every key; a key whose latest record is a tombstone is dropped
  once the tombstone is older than ``delete.retention.ms`` (default 1 day).
  The last record of a partition is always kept, so the next offset to assign
  can never go back.

Offsets are never rewritten: a compacted batch stores its offsets explicitly.
"""

from __future__ import annotations

import time

from loopline.log.embedded import batches
from loopline.log.embedded.store import Store, TopicMeta

RETENTION_CHECK_SECONDS = 1.0
_last_retention_check: dict[tuple[str, int, int], float] = {}


def maybe_clean(store: Store, meta: TopicMeta, partition: int) -> None:
    """Apply retention or compaction to a partition if it is due."""
    config = meta.config
    if config.compact:
        ratio = float(config.extra.get("min.cleanable.dirty.ratio", 0.5))
        with store.lock:
            row = store.db.execute(
                "SELECT dirty, next_offset - start_offset FROM partitions "
                "WHERE topic_id = ? AND partition = ?",
                (meta.id, partition),
            ).fetchone()
        if row and row[0] and row[0] >= ratio * max(row[1], 1):
            compact(store, meta, partition)
        return
    if config.retention_ms is None and config.retention_bytes is None:
        return
    key = (str(store.path), meta.id, partition)
    now = time.monotonic()
    if now - _last_retention_check.get(key, 0.0) < RETENTION_CHECK_SECONDS:
        return
    _last_retention_check[key] = now
    apply_retention(store, meta, partition)


def apply_retention(
    store: Store, meta: TopicMeta, partition: int, now_ms: int | None = None
) -> int:
    """Delete batches past the topic's retention; return how many records were dropped."""
    config = meta.config
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    dropped = 0
    with store.write() as db:
        rows = db.execute(
            "SELECT id, last_offset, count, max_timestamp, size FROM batches "
            "WHERE topic_id = ? AND partition = ? ORDER BY last_offset",
            (meta.id, partition),
        ).fetchall()
        total = sum(r[4] for r in rows)
        doomed = []
        for batch_id, last_offset, count, max_ts, size in rows:
            too_old = config.retention_ms is not None and max_ts < now_ms - config.retention_ms
            too_big = config.retention_bytes is not None and total > config.retention_bytes
            if not (too_old or too_big):
                break
            doomed.append((batch_id, last_offset))
            total -= size
            dropped += count
        if doomed:
            db.executemany("DELETE FROM batches WHERE id = ?", [(d[0],) for d in doomed])
            db.execute(
                "UPDATE partitions SET start_offset = ? WHERE topic_id = ? AND partition = ?",
                (doomed[-1][1] + 1, meta.id, partition),
            )
    return dropped


def compact(store: Store, meta: TopicMeta, partition: int, now_ms: int | None = None) -> int:
    """Rewrite a partition keeping the latest record per key; return how many records were dropped."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    tombstone_ms = int(meta.config.extra.get("delete.retention.ms", 86_400_000))
    with store.write() as db:
        rows = db.execute(
            "SELECT base_offset, data FROM batches WHERE topic_id = ? AND partition = ? "
            "ORDER BY last_offset",
            (meta.id, partition),
        ).fetchall()
        records = [
            r for base, data in rows for r in batches.decode(meta.name, partition, base, data)
        ]
        if not records:
            return 0
        latest: dict[bytes | None, int] = {}
        for i, record in enumerate(records):
            latest[record.key] = i
        last = len(records) - 1
        keep = [
            r
            for i, r in enumerate(records)
            if i == last
            or r.key is None  # unkeyed records cannot be compacted away by key
            or (
                latest[r.key] == i and not (r.value is None and r.timestamp < now_ms - tombstone_ms)
            )
        ]
        db.execute("DELETE FROM batches WHERE topic_id = ? AND partition = ?", (meta.id, partition))
        out = []
        for start in range(0, len(keep), 4096):
            chunk = keep[start : start + 4096]
            base = chunk[0].offset
            data = batches.encode(
                [r.key for r in chunk],
                [r.value for r in chunk],
                [r.timestamp for r in chunk],
                [r.headers for r in chunk],
                [r.offset - base for r in chunk],
            )
            out.append(
                (
                    meta.id,
                    partition,
                    base,
                    chunk[-1].offset,
                    len(chunk),
                    max(r.timestamp for r in chunk),
                    len(data),
                    data,
                )
            )
        db.executemany(
            "INSERT INTO batches (topic_id, partition, base_offset, last_offset, count, "
            "max_timestamp, size, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            out,
        )
        db.execute(
            "UPDATE partitions SET dirty = 0 WHERE topic_id = ? AND partition = ?",
            (meta.id, partition),
        )
    return len(records) - len(keep)
