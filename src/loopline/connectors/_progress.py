"""How far each file ingest got, kept in the compacted topic ``_loopline_ingest``.

One record per (topic, file) pair, keyed ``<topic>:<sha256 of the file>``, is
written in the same transaction as the rows it counts, so the latest record
of a key always says exactly which rows of that file are in the topic.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> ensure_topic(log)
>>> key = progress_key("clicks", "ab" * 32)
>>> producer = log.producer()
>>> producer.send(PROGRESS_TOPIC, Progress(rows=10, produced=9, dead_lettered=1).encode("a.csv"), key)
>>> producer.flush()
1
>>> read_progress(log, key)
Progress(rows=10, produced=9, dead_lettered=1, done=False)
>>> read_progress(log, progress_key("clicks", "cd" * 32))
Progress(rows=0, produced=0, dead_lettered=0, done=False)
>>> log.close()
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

from loopline.log import Log, LogError, TopicConfig, TopicExists

PROGRESS_TOPIC = "_loopline_ingest"


@dataclass(frozen=True)
class Progress:
    """Rows of one file already in its topic (in file order), and how they ended up."""

    rows: int = 0
    produced: int = 0
    dead_lettered: int = 0
    done: bool = False

    def encode(self, path: str) -> bytes:
        return json.dumps(
            {
                "rows": self.rows,
                "produced": self.produced,
                "dead_lettered": self.dead_lettered,
                "path": path,
                "done": self.done,
            }
        ).encode()


def progress_key(topic: str, file_id: str) -> bytes:
    return f"{topic}:{file_id}".encode()


def ensure_topic(log: Log) -> None:
    """Create the progress topic if it is missing."""
    with contextlib.suppress(TopicExists):
        log.create_topic(PROGRESS_TOPIC, TopicConfig(partitions=1, compact=True))


def read_progress(log: Log, key: bytes, timeout: float = 60.0) -> Progress:
    """The latest progress of `key`, read from the start of the topic to its end.

    Reads committed records only, and stops on the consumer's position rather
    than on an empty poll: a slow poll must not pass for "nothing was done",
    which would write every row again.
    """
    ends = {p.partition: p.end for p in log.describe_topic(PROGRESS_TOPIC).partitions}
    consumer = log.consumer(None, [PROGRESS_TOPIC], reset="earliest")
    latest: bytes | None = None
    try:
        partitions = consumer.assignment()
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp.partition] for tp in partitions):
            records = consumer.poll(max_records=10_000, timeout=0.2)
            for record in records:
                if record.key == key:
                    latest = record.value
            if not records and time.monotonic() > deadline:
                raise LogError(
                    f"could not read topic {PROGRESS_TOPIC!r} to its end in {timeout:.0f}s, so "
                    "it is unknown which rows an earlier run ingested; check that the log is "
                    "reachable and try again"
                )
    finally:
        consumer.close()
    if latest is None:
        return Progress()
    entry = json.loads(latest)
    return Progress(entry["rows"], entry["produced"], entry["dead_lettered"], entry["done"])
