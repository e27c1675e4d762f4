"""`ConfluentRegistry` (``--schema-registry URL``) against loopline's own registry REST server."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from loopline.connectors.http import create_app
from loopline.contracts import (
    ContractNotFound,
    IncompatibleSchema,
    LogRegistry,
    Topic,
    avro_schema,
)
from loopline.contracts.external import ConfluentRegistry
from loopline.contracts.registry_http import create_registry_app
from loopline.http.server import running
from loopline.log import Log
from support import consume_all

V1 = {"type": "record", "name": "Click", "fields": [{"name": "item", "type": "long"}]}
V2 = {
    "type": "record",
    "name": "Click",
    "fields": [
        {"name": "item", "type": "long"},
        {"name": "country", "type": "string", "default": "unknown"},
    ],
}
BREAKING = {"type": "record", "name": "Click", "fields": [{"name": "item", "type": "string"}]}


class Click(msgspec.Struct):
    member_id: str
    item: int


@pytest.fixture
def served(log: Log):
    """(loopline's registry, a ConfluentRegistry talking to it over HTTP)."""
    registry = LogRegistry(log)
    with running(create_registry_app(registry)) as url:
        external = ConfluentRegistry(url)
        yield registry, external
        external.close()
    registry.close()


def test_register_latest_by_id_and_versions(served, new_topic) -> None:
    registry, external = served
    subject = f"{new_topic()}-value"
    v1 = external.register(subject, V1)
    assert (v1.name, v1.version, v1.schema) == (subject, 1, V1)
    assert v1.schema_id == registry.latest(subject).schema_id
    assert external.register(subject, V1) == v1  # registering again is a no-op
    v2 = external.register(subject, V2)
    assert v2.version == 2
    assert external.latest(subject) == v2
    assert external.version(subject, 1) == v1
    assert [v.version for v in external.versions(subject)] == [1, 2]
    assert external.by_id(v1.schema_id) == V1
    assert subject in external.names()


def test_check_and_incompatible_registration(served, new_topic) -> None:
    registry, external = served
    subject = new_topic()
    assert external.check(subject, V1) == []  # no subject yet
    external.register(subject, V1)
    assert external.check(subject, V2) == []
    problems = external.check(subject, BREAKING)
    assert problems and "item" in problems[0].message
    with pytest.raises(IncompatibleSchema) as refused:
        external.register(subject, BREAKING)
    assert "is not backward compatible with v1" in str(refused.value)
    external.set_mode(subject, "none")
    assert external.mode(subject) == registry.mode(subject) == "none"
    assert external.register(subject, BREAKING).version == 2


def test_missing_things_are_contract_not_found(served) -> None:
    _, external = served
    with pytest.raises(ContractNotFound):
        external.latest("no-such-contract")
    with pytest.raises(ContractNotFound):
        external.versions("no-such-contract")
    with pytest.raises(KeyError):  # AvroCodec turns a KeyError into "unknown schema id"
        external.by_id(12345)


def test_bindings_follow_confluent_naming_or_live_in_memory(served, new_topic) -> None:
    _, external = served
    topic = new_topic()
    assert external.binding(topic) is None
    external.register(f"{topic}-value", V1)
    binding = external.binding(topic)
    assert (binding.contract, binding.encoding) == (f"{topic}-value", "avro")
    other = new_topic()
    external.register("shared-clicks", V1)
    assert external.bind(other, "shared-clicks").encoding == "json"
    assert external.binding(other).contract == "shared-clicks"


def test_typed_topics_and_http_ingest_work_over_an_external_registry(
    log, served, new_topic
) -> None:
    registry, external = served
    topic = new_topic(partitions=2)
    clicks = Topic(topic, Click, key="member_id", encoding="avro", contract=f"{topic}-value")
    external.register(clicks.contract_name, avro_schema(Click))
    with running(create_app(log, external)) as url:
        answer = httpx.post(
            f"{url}/v1/topics/{topic}/records?key=member_id",
            json=[{"member_id": "m-1", "item": 1}, {"member_id": "m-2", "item": 2}],
        )
        bad = httpx.post(f"{url}/v1/topics/{topic}/records", json=[{"member_id": "m-3"}])
    assert answer.status_code == 200, answer.text
    assert bad.status_code == 400
    consumer = clicks.consumer(log, registry, group=None, reset="earliest")
    messages = consume_all(consumer, 2)
    consumer.close()
    assert sorted(m.value.item for m in messages) == [1, 2]
    assert all(m.record.value[0] == 0 for m in messages)  # Confluent wire format
