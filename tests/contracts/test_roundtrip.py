"""Every field type survives a round trip through the log, in JSON and in Avro, on both backends."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Literal

import fastavro
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.contracts import (
    ContractViolation,
    LogRegistry,
    Topic,
    avro_schema,
    record_type,
)
from support import consume_all, examples, unique


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(msgspec.Struct):
    city: str
    zip: str | None = None


class Everything(msgspec.Struct):
    name: str
    count: int
    ratio: float
    active: bool
    blob: bytes
    at: datetime.datetime
    day: datetime.date
    id: uuid.UUID
    color: Color
    size: Literal["s", "m", "l"]
    address: Address
    tags: list[str] = []
    scores: dict[str, float] = {}
    history: list[Address] = []
    note: str | None = None


def everything() -> st.SearchStrategy[Everything]:
    text = st.text(max_size=20)
    return st.builds(
        Everything,
        name=text,
        count=st.integers(-(2**63), 2**63 - 1),
        ratio=st.floats(allow_nan=False, allow_infinity=False),
        active=st.booleans(),
        blob=st.binary(max_size=30),
        # Avro's timestamp-millis keeps milliseconds, so generate whole milliseconds (UTC)
        at=st.integers(0, 4_000_000_000_000).map(
            lambda ms: datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
        ),
        day=st.dates(datetime.date(1970, 1, 1), datetime.date(2200, 1, 1)),
        id=st.uuids(),
        color=st.sampled_from(Color),
        size=st.sampled_from(["s", "m", "l"]),
        address=st.builds(Address, city=text, zip=st.none() | text),
        tags=st.lists(text, max_size=4),
        scores=st.dictionaries(text, st.floats(allow_nan=False, allow_infinity=False), max_size=3),
        history=st.lists(st.builds(Address, city=text), max_size=3),
        note=st.none() | text,
    )


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_every_field_type_round_trips(log, backend, encoding):
    registry = LogRegistry(log)

    @settings(
        max_examples=examples(backend, 25, 4),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(everything(), min_size=1, max_size=8))
    def check(records):
        topic = Topic(unique("every"), Everything, key="name", encoding=encoding)
        topic.create(log, registry)
        producer = topic.producer(log, registry)
        for r in records:
            producer.send(r)
        assert producer.flush() == len(records)
        consumer = topic.consumer(log, registry, group=None, reset="earliest")
        got = []
        while len(got) < len(records):
            batch = consumer.poll(timeout=5.0)
            assert batch, "records did not arrive"
            got += batch
        consumer.close()
        producer.close()
        assert sorted((m.value for m in got), key=repr) == sorted(records, key=repr)
        assert consumer.dead_lettered == 0
        for m in got:
            assert m.record.key == m.value.name.encode()

    check()
    registry.close()


def test_avro_values_are_in_the_confluent_wire_format(log, new_topic):
    registry = LogRegistry(log)
    topic = Topic(unique("wire"), Address, encoding="avro")
    topic.create(log, registry)
    producer = topic.producer(log, registry)
    producer.send(Address("Oslo", "0150"))
    producer.flush()
    reader = log.consumer(None, [topic.name], reset="earliest")
    (record,) = consume_all(reader, 1)
    assert record.value[0] == 0  # magic byte
    schema_id = int.from_bytes(record.value[1:5], "big")
    assert schema_id == registry.latest(topic.name).schema_id
    import io

    decoded = fastavro.schemaless_reader(
        io.BytesIO(record.value[5:]), fastavro.parse_schema(registry.by_id(schema_id)), None
    )
    assert decoded == {"city": "Oslo", "zip": "0150"}
    reader.close()
    registry.close()


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_producer_refuses_a_record_that_breaks_the_contract(log, encoding):
    registry = LogRegistry(log)
    topic = Topic(unique("strict"), Address, encoding=encoding)
    topic.create(log, registry)
    producer = topic.producer(log, registry)
    with pytest.raises(ContractViolation, match=r"\$\.city"):
        producer.send({"city": 42})
    with pytest.raises(ContractViolation, match="city"):
        producer.send(Address(city=42))  # type: ignore[arg-type]
    assert producer.flush() == 0
    assert log.describe_topic(topic.name).partitions[0].end == 0
    registry.close()


def test_schema_from_a_type_and_back_validates_the_same_records():
    schema = avro_schema(Everything)
    fastavro.parse_schema(schema)  # a valid Avro schema
    rebuilt = record_type(schema)
    assert [f["name"] for f in schema["fields"]] == list(Everything.__struct_fields__)
    assert avro_schema(rebuilt)["fields"][0] == schema["fields"][0]
