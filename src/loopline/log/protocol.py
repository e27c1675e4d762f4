"""The log contract: what every loopline backend promises.

Everything in loopline talks to other parts only through topics of a log. Two
backends implement this contract, chosen by URL (see `loopline.log.open_log`):

- ``embedded:PATH`` - a durable log in a local directory, no server (the default);
- ``kafka://host:port[,host:port...]`` - Apache Kafka through librdkafka.

One conformance suite (``tests/log/``) runs every promise below against both.

Topics
    A topic has one or more partitions, a cleanup policy (``delete`` by age and
    size, or ``compact``), and retention settings. Names are Kafka's: letters,
    digits, ``.``, ``_`` and ``-``, at most 249 characters.

Records
    A record has a key (bytes or None), a value (bytes, or None: a tombstone), a
    timestamp in milliseconds (given by the producer, else set on append) and
    headers (a tuple of ``(str, bytes)`` pairs). A timestamp must be positive (to
    librdkafka, 0 means "now"). Offsets within a partition
    increase strictly; records of a partition are read in offset order. There is
    no order across partitions.

Partitioning
    A keyed record goes to ``murmur2(key) & 0x7fffffff % partitions``, the Java
    client's default, so a key lands in the same partition whichever Kafka client
    wrote it (`loopline.log.partitioner`). An unkeyed record goes to any partition.

Producing
    `Producer.send` queues a record; `Producer.flush` blocks until every queued
    record is durable and returns how many were acknowledged, or raises
    `DeliveryError`. A record is acknowledged only once it is durable: it
    survives a crash (``kill -9``) of any process from then on. Records a
    `DeliveryError` names were not acknowledged: on the embedded log they are
    dropped and never appear; on Kafka, records still in flight when a flush
    timed out may yet arrive (the idempotent producer never writes one twice).

Consuming
    A consumer belongs to a consumer group (or to none: then it reads every
    partition and cannot commit). It starts each partition at the group's
    committed offset, else at the ``earliest`` or ``latest`` offset (``reset``).
    `Consumer.commit` stores, per partition, the offset of the next record to
    read, so a consumer of the same group that starts later resumes there;
    without arguments it stores the position of every partition the consumer
    returned records from or seeked, and leaves the others alone. A
    consumer can seek (to an offset, a timestamp, the beginning or the end),
    pause and resume partitions, and report its lag per partition.
    `Log.committed_offsets` reads a group's committed offsets without joining
    the group (an admin read, as a monitor watching another stage's lag needs):
    it never disturbs the group's members.
    The embedded backend allows one live member per group; Kafka balances the
    partitions over any number of members (a member joining a busy group may
    own no partition until the others' next poll hands some over).

Transactions
    A producer made with a ``transactional_id`` writes records and commits a
    consumer's input offsets in one atomic step: after `commit_transaction`
    all of them are visible, after `abort_transaction` (or a crash) none are.
    A ``read_committed`` consumer never sees records of an aborted or open
    transaction. Aborting does not rewind the consumer whose offsets were in
    the transaction: to process its records again, seek back to `committed()`.

Compaction
    A compacted topic keeps at least the latest value of every key, and
    eventually drops keys whose latest value is a tombstone. How soon is up to
    the backend (on Kafka, the log cleaner and the topic's ``segment.ms``,
    ``min.cleanable.dirty.ratio`` and ``delete.retention.ms``).

Example, on the embedded backend:

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("clicks", TopicConfig(partitions=2))
>>> producer = log.producer()
>>> producer.send("clicks", b'{"item": 7}', key=b"member-42")
>>> producer.flush()
1
>>> consumer = log.consumer("reader", ["clicks"], reset="earliest")
>>> [(r.key, r.value) for r in consumer.poll(timeout=1.0)]
[(b'member-42', b'{"item": 7}')]
>>> consumer.commit()
>>> consumer.close(); producer.close(); log.close()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from loopline.log.records import Headers, Record, TopicPartition
from loopline.log.topics import TopicConfig, TopicInfo

Reset = Literal["earliest", "latest"]
"""Where a consumer group with no committed offset starts: the oldest record or the next one."""


@runtime_checkable
class Producer(Protocol):
    """Writes records to topics; see the module docstring for the guarantees."""

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        timestamp: int | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record. It is durable only after `flush` returns."""
        ...

    def send_batch(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        timestamps: Sequence[int] | None = None,
    ) -> None:
        """Queue many records at once (the fast path for bulk loads)."""
        ...

    def flush(self, timeout: float | None = None) -> int:
        """Block until every queued record is durable; return how many were acknowledged.

        Raises `DeliveryError` if any record could not be delivered in `timeout`
        seconds (None: as long as records are being acknowledged; on Kafka it
        gives up once the broker has acknowledged none for the log's timeout).
        """
        ...

    def begin_transaction(self) -> None:
        """Start a transaction (producer must have a ``transactional_id``)."""
        ...

    def send_offsets(
        self, consumer: Consumer, offsets: Mapping[TopicPartition, int] | None = None
    ) -> None:
        """Commit `offsets` (default: the consumer's positions) as part of the open transaction."""
        ...

    def commit_transaction(self) -> None:
        """Make every record and offset of the open transaction visible, atomically."""
        ...

    def abort_transaction(self) -> None:
        """Discard every record and offset of the open transaction."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


@runtime_checkable
class Consumer(Protocol):
    """Reads records of its assigned partitions, in offset order per partition."""

    group: str | None

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Return up to `max_records` records, waiting up to `timeout` seconds for the first."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Store the group's offsets (default: the position of every partition read from or seeked)."""
        ...

    def committed(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None where nothing was committed)."""
        ...

    def assignment(self) -> list[TopicPartition]:
        """The partitions this consumer currently reads."""
        ...

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record this consumer will return from `partition`."""
        ...

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Continue reading `partition` at `offset`."""
        ...

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Continue at the first offset still held (default: every assigned partition)."""
        ...

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Continue after the last record (only new records will be read)."""
        ...

    def seek_to_time(
        self, timestamp: int, partitions: Iterable[TopicPartition] | None = None
    ) -> None:
        """Continue at the first record whose timestamp is >= `timestamp` (ms), or at the end."""
        ...

    def pause(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Stop returning records of `partitions` until `resume`."""
        ...

    def resume(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Return records of paused `partitions` again."""
        ...

    def lag(self) -> dict[TopicPartition, int]:
        """Records not yet read per assigned partition (end offset minus position)."""
        ...

    def close(self) -> None:
        """Leave the group and release resources (does not commit)."""
        ...


@runtime_checkable
class Log(Protocol):
    """A log: topics, producers and consumers. Open one with `loopline.log.open_log`."""

    url: str
    local: bool
    """True when the log is on this machine's disk (the embedded log): a committed
    transaction is an fsync'd local write, and no outage can part a process from its log."""

    def create_topic(self, name: str, config: TopicConfig | None = None) -> None:
        """Create a topic; raises `TopicExists` if it already exists."""
        ...

    def describe_topic(self, name: str) -> TopicInfo:
        """Settings and per-partition offsets of a topic; raises `TopicNotFound`."""
        ...

    def list_topics(self) -> list[str]:
        """Names of all topics, sorted."""
        ...

    def delete_topic(self, name: str) -> None:
        """Delete a topic and its records; raises `TopicNotFound`."""
        ...

    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        """Every offset consumer group `group` has committed, per partition, read without
        joining the group; empty for a group that never committed."""
        ...

    def producer(self, *, transactional_id: str | None = None) -> Producer:
        """A producer; with `transactional_id`, one that can write transactions."""
        ...

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        reset: Reset = "latest",
        read_committed: bool = True,
    ) -> Consumer:
        """A consumer of `topics` in `group` (None: no group, reads every partition, no commits).

        On return the consumer owns its partitions: `assignment`, `seek` and
        `position` work before the first `poll`.
        """
        ...

    def close(self) -> None:
        """Release resources held by this handle."""
        ...
