"""How far each connector got, kept in the compacted topic ``_loopline_ingest``.

File ingests keep an `IngestProgress` here; change data capture
(`loopline.connectors.cdc`) keeps its source position under keys of its own
(``cdc:...``), read with the same `read_latest`.

One record per ingest, written in the same transaction as the rows it counts,
so the latest record of a key always says exactly which rows of that file are
in the topic. An ingest is known by what decides which records it writes:

- the topic *as created*: its id (`loopline.log.TopicInfo.id`), so a topic
  deleted and created again under the same name is another topic, whose rows
  must all be written again;
- the file's content (SHA-256), whatever its name or place;
- the options that shape the records (key column, time column, contract,
  encoding): a rerun with other options is another ingest, not a resume.

The topic is read through `loopline.stream.table`: a record that is not an
ingest record is logged and skipped.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("clicks")
>>> ensure_topic(log)
>>> key = progress_key(log, "clicks", "ab" * 32, IngestOptions(key="member_id"))
>>> key.decode()[:12]
'clicks:1:aba'
>>> producer = log.producer()
>>> producer.send(PROGRESS_TOPIC, IngestProgress(rows=10, produced=9, dead_lettered=1).encode(), key)
>>> producer.flush()
1
>>> read_progress(log, key)
IngestProgress(rows=10, produced=9, dead_lettered=1, done=False, path='')
>>> read_progress(log, progress_key(log, "clicks", "ab" * 32, IngestOptions()))
IngestProgress(rows=0, produced=0, dead_lettered=0, done=False, path='')
>>> log.close()
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable

import msgspec

from loopline.log import Log, Record, TopicConfig, TopicExists
from loopline.stream.table import read_table

PROGRESS_TOPIC = "_loopline_ingest"


class IngestOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The options of an ingest that shape its records; other options, another ingest."""

    key: str | None = None
    time_column: str | None = None
    contract: str | None = None
    encoding: str | None = None

    def digest(self) -> str:
        """16 hex digits that tell these options apart from any others."""
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()[:16]


class IngestProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Rows of one file already in its topic (in file order), and how they ended up."""

    rows: int = 0
    produced: int = 0
    dead_lettered: int = 0
    done: bool = False
    path: str = ""  # the file as last named, for people reading the topic

    def encode(self) -> bytes:
        return msgspec.json.encode(self)


_decode = msgspec.json.Decoder(IngestProgress).decode


def progress_key(log: Log, topic: str, file_id: str, options: IngestOptions) -> bytes:
    """The key of the progress of ingesting the file `file_id` into `topic` with `options`."""
    topic_id = log.describe_topic(topic).id
    return f"{topic}:{topic_id}:{file_id}:{options.digest()}".encode()


def ensure_topic(log: Log) -> None:
    """Create the progress topic if it is missing."""
    with contextlib.suppress(TopicExists):
        log.create_topic(PROGRESS_TOPIC, TopicConfig(partitions=1, compact=True))


def read_progress(log: Log, key: bytes, timeout: float = 60.0) -> IngestProgress:
    """The latest progress of `key`, read from the start of the topic to its end.

    Committed records only, to the end offsets of now (`loopline.stream.table`):
    a slow read must not pass for "nothing was done", which would write every
    row again, so it raises `TableTimeout` rather than guess.
    """
    latest = read_latest(log, key, _decode, timeout=timeout)
    return IngestProgress() if latest is None else _decode(latest)


def read_latest(
    log: Log, key: bytes, check: Callable[[bytes], object], *, timeout: float = 60.0
) -> bytes | None:
    """The latest value of `key` that `check` accepts (None: no such record).

    A value `check` raises on is skipped (logged by `loopline.stream.table`),
    not taken as the latest.
    """
    latest: list[bytes | None] = [None]

    def apply(record: Record) -> None:
        if record.key == key:
            check(record.value or b"")
            latest[0] = record.value

    read_table(log, PROGRESS_TOPIC, apply, timeout=timeout)
    return latest[0]
