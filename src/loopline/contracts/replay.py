"""Inspecting and replaying dead letters.

`pending` lists the dead letters of a topic that have not been replayed yet.
`replay` re-submits them: each one is checked against the topic's *current*
contract (after the contract was fixed, say); those that pass go back to the
topic with their own key, timestamp and headers, the rest go back to the
dead-letter topic with the new reason. Each
batch is one transaction (records, returned letters and the replay position
together), so a replay interrupted at any point neither loses nor doubles a
record.

>>> import tempfile, msgspec
>>> from loopline.log import open_log
>>> from loopline.contracts import LogRegistry, Topic
>>> class Visit(msgspec.Struct):
...     page: str
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = LogRegistry(log)
>>> Topic("visits", Visit).create(log, registry)
>>> raw = log.producer(); raw.send("visits", b'{"page": 7}'); raw.flush()
1
>>> consumer = Topic("visits", Visit).consumer(log, registry, group="app", reset="earliest")
>>> consumer.poll(timeout=1.0), consumer.dead_lettered
([], 1)
>>> consumer.commit()
>>> [d.reason for d in pending(log, "visits")]
['Expected `str`, got `int` - at `$.page`']
>>> replay(log, registry, "visits")  # the contract still refuses it
ReplayReport(replayed=0, returned=1)
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from loopline.contracts.codecs import Codec, ContractViolation
from loopline.contracts.registry import LogRegistry
from loopline.contracts.schemas import record_type
from loopline.contracts.topics import codec_for
from loopline.log import Log, Record, TopicExists, TopicNotFound
from loopline.stream.deadletters import DeadLetter, dead_letter, dlq_topic

BATCH = 500


def replay_group(topic: str) -> str:
    """The consumer group whose committed offset marks the dead letters already replayed."""
    return f"loopline-dlq-replay.{topic}"


@dataclass(frozen=True)
class ReplayReport:
    replayed: int
    returned: int


def pending(
    log: Log, topic: str, *, everything: bool = False, limit: int | None = None
) -> list[DeadLetter]:
    """Dead letters of `topic` not yet replayed (all of them with `everything`)."""
    dlq = dlq_topic(topic)
    if dlq not in log.list_topics():
        return []
    # Reading in the replay group starts at its committed offset: the letters not yet replayed.
    consumer = log.consumer(None if everything else replay_group(topic), [dlq], reset="earliest")
    try:
        out: list[DeadLetter] = []
        while batch := consumer.poll(max_records=BATCH, timeout=1.0):
            out += [DeadLetter.from_record(r) for r in batch]
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out
    finally:
        consumer.close()


def _checker(
    log: Log, registry: LogRegistry, topic: str
) -> tuple[Codec | None, str | None, int | None]:
    binding = registry.binding(topic)
    if binding is None:
        return None, None, None
    version = registry.latest(binding.contract)
    codec = codec_for(record_type(version.schema), version, binding.encoding, registry)
    return codec, binding.contract, version.version


def _check(codec: Codec | None, record: Record) -> bytes | None:
    """The value to re-submit, or ContractViolation."""
    if record.value is None:
        raise ContractViolation("a tombstone (no value) is not a record")
    if codec is None:
        try:
            json.loads(record.value)
        except ValueError as exc:
            raise ContractViolation(f"not valid JSON: {exc}") from None
        return record.value
    try:
        return codec.encode(codec.decode(record.value))
    except ContractViolation:
        if codec.encoding != "avro":
            raise
        # A value refused at the edge may be plain JSON meant for an Avro topic.
        try:
            return codec.encode(json.loads(record.value))
        except ValueError:
            raise ContractViolation("neither Avro in the wire format nor JSON") from None


def replay(log: Log, registry: LogRegistry, topic: str) -> ReplayReport:
    """Re-submit the pending dead letters of `topic` that its current contract accepts."""
    dlq = dlq_topic(topic)
    if dlq not in log.list_topics():
        raise TopicNotFound(dlq)
    with contextlib.suppress(TopicExists):
        log.create_topic(topic)
    codec, contract, version = _checker(log, registry, topic)
    consumer = log.consumer(replay_group(topic), [dlq], reset="earliest")
    producer = log.producer(transactional_id=f"loopline-dlq-replay-{topic}")
    # Stop at the end as of now: letters that fail again are appended to this same topic.
    end = {p.partition: p.end for p in log.describe_topic(dlq).partitions}
    replayed = returned = 0
    try:
        while any(consumer.position(tp) < end[tp.partition] for tp in consumer.assignment()):
            polled = consumer.poll(max_records=BATCH, timeout=1.0)
            if not polled:
                break  # on Kafka, transaction markers keep positions short of `end`
            batch = [r for r in polled if r.offset < end[r.partition]]
            for tp in consumer.assignment():
                if consumer.position(tp) >= end[tp.partition]:
                    consumer.pause([tp])
            if not batch:
                continue
            producer.begin_transaction()
            for record in batch:
                letter = DeadLetter.from_record(record)
                original = letter.original_headers
                # The record's own time; a letter written before it was kept has only its own.
                timestamp = letter.timestamp if letter.timestamp is not None else record.timestamp
                try:
                    value = _check(codec, record)
                except ContractViolation as exc:
                    source = Record(
                        letter.source_topic or topic,
                        letter.source_partition or 0,
                        letter.source_offset if letter.source_offset is not None else -1,
                        timestamp,
                        record.key,
                        record.value,
                        original,
                    )
                    key, value, headers = dead_letter(source, str(exc), contract, version)
                    producer.send(dlq, value, key, timestamp=record.timestamp, headers=headers)
                    returned += 1
                    continue
                producer.send(topic, value, record.key, timestamp=timestamp, headers=original)
                replayed += 1
            producer.send_offsets(
                consumer,
                {tp: min(consumer.position(tp), end[tp.partition]) for tp in consumer.assignment()},
            )
            producer.commit_transaction()
    finally:
        producer.close()
        consumer.close()
    return ReplayReport(replayed, returned)
