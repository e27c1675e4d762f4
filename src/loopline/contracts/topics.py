"""Typed topics: a topic declared with a record type, a key field and an encoding.

Declaring a topic gives a producer that validates (a record that breaks the
contract raises `ContractViolation` before anything is written) and a
consumer that decodes (a record it cannot decode goes to ``<topic>.dlq`` with
the reason, and the consumer goes on).

>>> import tempfile, msgspec
>>> from loopline.log import open_log
>>> class Click(msgspec.Struct):
...     member_id: str
...     item: int
>>> clicks = Topic("clicks", Click, key="member_id")
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = LogRegistry(log)
>>> clicks.create(log, registry)
>>> producer = clicks.producer(log, registry)
>>> producer.send(Click("m-1", 7)); producer.send({"member_id": "m-2", "item": 3})
>>> producer.send({"member_id": "m-3", "item": "three"})
Traceback (most recent call last):
...
loopline.contracts.codecs.ContractViolation: contract 'clicks' v1: Expected `int`, got `str` - at `$.item`
>>> producer.flush()
2
>>> consumer = clicks.consumer(log, registry, group="readers", reset="earliest")
>>> [m.value.item for m in consumer.poll(timeout=1.0)]
[7, 3]
>>> log.close()
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from loopline.contracts.codecs import AvroCodec, Codec, ContractViolation, JsonCodec
from loopline.contracts.registry import ContractVersion, Encoding, LogRegistry, SchemaRegistry
from loopline.contracts.schemas import avro_schema
from loopline.log import Log, Record, Reset, TopicConfig, TopicExists, timestamp_problem
from loopline.stream.deadletters import dead_letter, dlq_topic

T = TypeVar("T")


class Message(NamedTuple, Generic[T]):
    """A decoded record: the record as read from the log, and its typed value."""

    record: Record
    value: T


def codec_for(
    record_type: type, version: ContractVersion, encoding: Encoding, registry: SchemaRegistry
) -> Codec:
    if encoding == "avro":
        return AvroCodec(record_type, version.schema, version.schema_id, registry.by_id)
    return JsonCodec(record_type, version.schema)


def event_time(value: Any) -> int:
    """Milliseconds since the epoch of a datetime, or of a number (seconds or milliseconds).

    Raises `ContractViolation` for a time the log cannot take (before 1970, or
    more than an hour ahead: see `loopline.log.timestamp_problem`).
    """
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        ms = int(value.timestamp() * 1000)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ms = int(value * 1000) if value < 100_000_000_000 else int(value)
    else:
        raise ContractViolation(
            f"cannot read event time from {value!r}: use a datetime or epoch number"
        )
    if problem := timestamp_problem(ms, time.time_ns() // 1_000_000):
        raise ContractViolation(f"event time {value!r}: {problem}")
    return ms


@dataclass(frozen=True)
class Topic(Generic[T]):
    """A topic with a contract: its record type, key field, event-time field and encoding."""

    name: str
    record_type: type[T]
    key: str | None = None
    time: str | None = None
    encoding: Encoding = "json"
    contract: str | None = None
    partitions: int = 1
    compact: bool = False
    config: dict[str, str] = field(default_factory=dict)

    @property
    def contract_name(self) -> str:
        return self.contract or self.name

    def create(self, log: Log, registry: LogRegistry) -> None:
        """Create the topic (if missing), register its contract and bind the two."""
        with contextlib.suppress(TopicExists):
            log.create_topic(
                self.name,
                TopicConfig(partitions=self.partitions, compact=self.compact, extra=self.config),
            )
        registry.register(self.contract_name, avro_schema(self.record_type))
        registry.bind(self.name, self.contract_name, self.encoding)

    def producer(self, log: Log, registry: SchemaRegistry) -> TypedProducer[T]:
        return TypedProducer(self, log, registry)

    def consumer(
        self, log: Log, registry: SchemaRegistry, *, group: str | None, reset: Reset = "latest"
    ) -> TypedConsumer[T]:
        return TypedConsumer(self, log, registry, group=group, reset=reset)


class TypedProducer(Generic[T]):
    """Validates and encodes records of a `Topic` before they reach the log."""

    def __init__(self, topic: Topic[T], log: Log, registry: SchemaRegistry) -> None:
        self.topic = topic
        self.version = registry.register(topic.contract_name, avro_schema(topic.record_type))
        self._codec = codec_for(topic.record_type, self.version, topic.encoding, registry)
        self._producer = log.producer()
        self._label = f"contract {topic.contract_name!r} v{self.version.version}"

    def encode(
        self, record: T | dict, *, checked: bool = False
    ) -> tuple[bytes | None, bytes, int | None]:
        """Key, value and timestamp of `record`, or `ContractViolation`; `checked`: the
        caller has checked the record's field types itself (the codec skips its check)."""
        try:
            value = self._codec.encode(record, checked=checked)
        except ContractViolation as exc:
            raise ContractViolation(f"{self._label}: {exc}") from None
        get = record.get if isinstance(record, dict) else lambda f: getattr(record, f, None)
        key = None
        if self.topic.key is not None:
            raw = get(self.topic.key)
            key = raw if isinstance(raw, bytes) else str(raw).encode()
        timestamp = event_time(get(self.topic.time)) if self.topic.time else None
        return key, value, timestamp

    def send(self, record: T | dict) -> None:
        key, value, timestamp = self.encode(record)
        self._producer.send(self.topic.name, value, key, timestamp=timestamp)

    def flush(self, timeout: float | None = None) -> int:
        return self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.close()


class TypedConsumer(Generic[T]):
    """Decodes records of a `Topic`; undecodable ones go to its dead-letter topic."""

    def __init__(
        self,
        topic: Topic[T],
        log: Log,
        registry: SchemaRegistry,
        *,
        group: str | None,
        reset: Reset = "latest",
    ) -> None:
        self.topic = topic
        self.version = registry.latest(topic.contract_name)
        self._codec = codec_for(topic.record_type, self.version, topic.encoding, registry)
        self._consumer = log.consumer(group, [topic.name], reset=reset)
        self._log = log
        self._dlq = None
        self.dead_lettered = 0

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message[T]]:
        out: list[Message[T]] = []
        decode = self._codec.decode
        for record in self._consumer.poll(max_records, timeout):
            try:
                out.append(Message(record, decode(record.value)))
            except ContractViolation as exc:
                self._dead_letter(record, str(exc))
        return out

    def _dead_letter(self, record: Record, reason: str) -> None:
        if self._dlq is None:
            with contextlib.suppress(TopicExists):
                self._log.create_topic(dlq_topic(self.topic.name))
            self._dlq = self._log.producer()
        key, value, headers = dead_letter(
            record, reason, self.topic.contract_name, self.version.version
        )
        self._dlq.send(dlq_topic(self.topic.name), value, key, headers=headers)
        self.dead_lettered += 1

    def commit(self) -> None:
        """Commit what was read; dead letters are made durable first, so none can be lost."""
        if self._dlq is not None:
            self._dlq.flush()
        self._consumer.commit()

    @property
    def consumer(self):
        """The underlying log consumer (seek, pause, lag, ...)."""
        return self._consumer

    def close(self) -> None:
        if self._dlq is not None:
            self._dlq.close()
        self._consumer.close()


def messages(consumer: TypedConsumer[T], timeout: float = 1.0) -> Iterable[Message[T]]:
    """Every message until nothing arrives for `timeout` seconds."""
    while batch := consumer.poll(timeout=timeout):
        yield from batch
