"""A topic read to its end and followed as a table: loopline's own compacted topics.

Schemas (``_loopline_schemas``), model versions and aliases
(``_loopline_models``), artifact chunks, ingest progress and the experiments
to come each live in a compacted topic that a process reads to its end on
start and then follows. `Table` is that reader, written once: it holds a
consumer of every partition, reads to the end offsets the log reports now
(stopping on the consumer's position, never on an empty poll: a slow poll must
not pass for "there is nothing more"), and hands each record to an `apply`
hook, in log order per partition.

The records of these topics are written by other processes, other versions
of loopline or anyone with access to the log. A record the hook cannot
decode (it raises) is logged, counted in `skipped` and passed over: it never
stops the read, the records after it, or a follower in the background.

>>> import tempfile
>>> import msgspec
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("settings")
>>> producer = log.producer()
>>> for key, value in [(b"a", b"1"), (b"b", b"[]"), (b"a", b"3")]:
...     producer.send("settings", value, key)
>>> producer.flush()
3
>>> latest: dict[bytes, int] = {}
>>> def apply(record):
...     latest[record.key] = msgspec.json.decode(record.value, type=int)
>>> table = Table(log, "settings", apply)
>>> table.refresh(), latest, table.skipped
(3, {b'a': 3}, 1)
>>> producer.send("settings", b"4", b"b"); producer.flush()
1
>>> table.refresh(), latest
(1, {b'a': 3, b'b': 4})
>>> table.close(); producer.close(); log.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from loopline.log import Log, LogError, Record, TopicPartition

__all__ = ["Table", "TableTimeout", "read_table"]

logger = logging.getLogger(__name__)

Apply = Callable[[Record], None]


class TableTimeout(LogError):
    """A table could not be read to its end in time (the message says what to do)."""


class Table:
    """Every record of `topic`, applied through `apply` in log order; see the module docstring.

    `refresh` reads what was appended since the last read; `follow` does so
    in a background thread every `interval` seconds until `close`. `timeout`
    bounds one read to the end, `max_records` one poll. `apply` runs under the table's lock, one
    record at a time; whatever it raises skips that record only.
    """

    def __init__(
        self,
        log: Log,
        topic: str,
        apply: Apply,
        *,
        timeout: float = 30.0,
        max_records: int = 10_000,
    ) -> None:
        self.log = log
        self.topic = topic
        self.apply = apply
        self.timeout = timeout
        self.max_records = max_records  # per poll: small for topics of large records
        self.skipped = 0  # records the hook refused
        self._lock = threading.RLock()
        self._consumer = log.consumer(None, [topic], reset="earliest")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self, *, until: Callable[[], bool] | None = None) -> int:
        """Apply every record appended since the last read; return how many were read.

        Stops early once `until()` is true (checked after every poll). Raises
        `TableTimeout` if the end is not reached in `timeout` seconds.
        """
        with self._lock:
            ends = {p.partition: p.end for p in self.log.describe_topic(self.topic).partitions}
            partitions = [tp for tp in self._consumer.assignment() if tp.topic == self.topic]
            read = 0
            deadline = time.monotonic() + self.timeout
            while not (until is not None and until()) and self._behind(partitions, ends):
                records = self._consumer.poll(max_records=self.max_records, timeout=0.2)
                for record in records:
                    self._apply(record)
                read += len(records)
                if not records and time.monotonic() > deadline:
                    raise TableTimeout(
                        f"could not read topic {self.topic!r} to its end in {self.timeout:.0f} s "
                        f"(on {self.log.url}): check that the log is reachable and try again"
                    )
            return read

    def _behind(self, partitions: list[TopicPartition], ends: dict[int, int]) -> bool:
        return any(self._consumer.position(tp) < ends.get(tp.partition, 0) for tp in partitions)

    def _apply(self, record: Record) -> None:
        try:
            self.apply(record)
        except Exception as exc:  # untrusted bytes: whatever they make the hook raise
            self.skipped += 1
            logger.warning(
                "skipping record %d of %s partition %d (key %r): %s",
                record.offset,
                record.topic,
                record.partition,
                record.key[:200] if record.key else record.key,
                f"{type(exc).__name__}: {exc}"[:500],
            )

    def seek_to_time(self, timestamp_ms: int) -> None:
        """Read from the first record stamped at or after `timestamp_ms` next."""
        with self._lock:
            self._consumer.seek_to_time(max(1, timestamp_ms))

    def seek_to_beginning(self) -> None:
        """Read every record still held again, from the first."""
        with self._lock:
            self._consumer.seek_to_beginning()

    def follow(self, interval: float = 1.0) -> None:
        """Refresh in a background thread every `interval` seconds until `close`."""
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # the log is away: the table keeps what it has, tries again
                    logger.exception("cannot follow topic %s; trying again", self.topic)

        self._thread = threading.Thread(
            target=run, name=f"loopline-table-{self.topic}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop following and release the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._consumer.close()


def read_table(log: Log, topic: str, apply: Apply, *, timeout: float = 60.0) -> int:
    """Read `topic` from its first record to its end once, through `apply`; return the count."""
    table = Table(log, topic, apply, timeout=timeout)
    try:
        return table.refresh()
    finally:
        table.close()
