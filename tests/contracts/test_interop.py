"""confluent-kafka's own Avro serializers and loopline read each other's records.

loopline's registry is served over Confluent's REST API on a real port;
confluent-kafka's ``SchemaRegistryClient`` talks to it. On Kafka the
Confluent side also uses confluent-kafka's own producer and consumer.
"""

from __future__ import annotations

import json
import uuid

import msgspec
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import KAFKA_BOOTSTRAP
from loopline.contracts import LogRegistry, Topic
from loopline.contracts.registry_http import create_registry_app
from loopline.http.server import running
from loopline.log import Log
from support import consume_all

# Written by hand, as a Confluent user would: a namespace, a doc, its own key order.
CLICK_V1 = {
    "type": "record",
    "name": "Click",
    "namespace": "com.example.shop",
    "doc": "A member clicked an item.",
    "fields": [
        {"name": "member_id", "type": "string"},
        {"name": "item", "type": "long"},
    ],
}


class Click(msgspec.Struct):
    member_id: str
    item: int


# v2 of the same record (same name: Avro matches records by full name) with a new field.
ClickV2 = msgspec.defstruct(
    "Click", [("member_id", str), ("item", int), ("country", str, "unknown")], kw_only=True
)


@pytest.fixture
def registry(log: Log):
    registry = LogRegistry(log)
    yield registry
    registry.close()


@pytest.fixture
def confluent(registry: LogRegistry):
    with running(create_registry_app(registry)) as url:
        client = SchemaRegistryClient({"url": url})
        yield client
        client.close()


def write_raw(log: Log, backend: str, topic: str, key: bytes, values: list[bytes]) -> None:
    """Write already-serialized values: with confluent-kafka's producer on Kafka."""
    if backend == "kafka":
        producer = Producer({"bootstrap.servers": KAFKA_BOOTSTRAP})
        for value in values:
            producer.produce(topic, value, key)
        assert producer.flush(30) == 0
        return
    producer = log.producer()
    for value in values:
        producer.send(topic, value, key)
    producer.flush()
    producer.close()


def read_raw(log: Log, backend: str, topic: str, expected: int) -> list[bytes]:
    """Read values as bytes: with confluent-kafka's consumer on Kafka."""
    if backend == "kafka":
        consumer = Consumer(
            {
                "bootstrap.servers": KAFKA_BOOTSTRAP,
                "group.id": f"interop-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        values: list[bytes] = []
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                values.append(message.value())
            if len(values) >= expected:
                break
        consumer.close()
        return values
    consumer = log.consumer(None, [topic], reset="earliest")
    records = consume_all(consumer, expected)
    consumer.close()
    return [r.value for r in records]


def test_confluent_serializer_writes_and_loopline_decodes(
    log, backend, registry, confluent, new_topic
) -> None:
    topic = new_topic(partitions=2)
    serializer = AvroSerializer(confluent, json.dumps(CLICK_V1))
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = [serializer({"member_id": f"m-{i}", "item": i}, ctx) for i in range(3)]
    write_raw(log, backend, topic, b"m", values)

    # Confluent's default subject naming: the contract is "<topic>-value".
    subject = f"{topic}-value"
    assert subject in registry.names()
    assert registry.latest(subject).schema == CLICK_V1
    reader = LogRegistry(log)  # another process's view, through the log alone
    clicks = Topic(topic, Click, encoding="avro", contract=subject)
    consumer = clicks.consumer(log, reader, group=None, reset="earliest")
    messages = []
    for _ in range(30):
        messages += consumer.poll(timeout=0.5)
        if len(messages) >= 3:
            break
    consumer.close()
    reader.close()
    assert sorted(m.value.item for m in messages) == [0, 1, 2]
    assert consumer.dead_lettered == 0


def test_loopline_reads_old_confluent_records_after_its_contract_evolved(
    log, backend, registry, confluent, new_topic
) -> None:
    topic = new_topic()
    subject = f"{topic}-value"
    # loopline's record types have no namespace, so the Confluent schema must not either.
    plain = {k: v for k, v in CLICK_V1.items() if k != "namespace"}
    serializer = AvroSerializer(confluent, json.dumps(plain))
    old = serializer(
        {"member_id": "m-1", "item": 1}, SerializationContext(topic, MessageField.VALUE)
    )
    write_raw(log, backend, topic, b"m-1", [old])

    clicks = Topic(topic, ClickV2, key="member_id", encoding="avro", contract=subject)
    clicks.create(log, registry)  # v2 adds a field with a default: backward compatible
    assert [v.version for v in registry.versions(subject)] == [1, 2]
    producer = clicks.producer(log, registry)
    producer.send(ClickV2(member_id="m-2", item=2, country="NL"))
    producer.flush()
    producer.close()

    consumer = clicks.consumer(log, registry, group=None, reset="earliest")
    messages = []
    for _ in range(30):
        messages += consumer.poll(timeout=0.5)
        if len(messages) >= 2:
            break
    consumer.close()
    assert sorted((m.value.member_id, m.value.country) for m in messages) == [
        ("m-1", "unknown"),
        ("m-2", "NL"),
    ]


def test_loopline_writes_and_confluent_deserializer_decodes(
    log, backend, registry, confluent, new_topic
) -> None:
    topic = new_topic(partitions=2)
    clicks = Topic(topic, Click, key="member_id", encoding="avro", contract=f"{topic}-value")
    clicks.create(log, registry)
    producer = clicks.producer(log, registry)
    for i in range(3):
        producer.send(Click(f"m-{i}", i))
    assert producer.flush() == 3
    producer.close()

    deserializer = AvroDeserializer(confluent)
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = read_raw(log, backend, topic, 3)
    decoded = sorted((deserializer(v, ctx) for v in values), key=lambda d: d["item"])
    assert decoded == [{"member_id": f"m-{i}", "item": i} for i in range(3)]

    # With a reader schema of its own (and the latest version as reader), it still agrees.
    latest = AvroDeserializer(confluent, conf={"use.latest.version": True})
    assert latest(values[0], ctx)["member_id"].startswith("m-")


def test_an_incompatible_confluent_registration_is_refused(registry, confluent, new_topic) -> None:
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    topic = new_topic()
    subject = f"{topic}-value"
    confluent.register_schema(subject, Schema(json.dumps(CLICK_V1), "AVRO"))
    breaking = {**CLICK_V1, "fields": [{"name": "member_id", "type": "long"}]}
    assert not confluent.test_compatibility(subject, Schema(json.dumps(breaking), "AVRO"))
    with pytest.raises(SchemaRegistryError) as refused:
        confluent.register_schema(subject, Schema(json.dumps(breaking), "AVRO"))
    assert refused.value.http_status_code == 409
    assert "member_id" in refused.value.error_message
    assert [v.version for v in registry.versions(subject)] == [1]
