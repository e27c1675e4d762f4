"""The HTTP ingest endpoint, served by uvicorn on a real port, on both backends."""

from __future__ import annotations

import datetime
import json

import httpx
import msgspec
import pytest

from loopline.connectors.http import create_app
from loopline.contracts import LogRegistry, Topic, dlq_topic
from loopline.http.server import running
from loopline.log import Log
from support import consume_all

TOKEN = "s3cret-token-0123456"


class Click(msgspec.Struct):
    member_id: str
    item: int
    at: datetime.datetime


def count(log: Log, topic: str) -> int:
    return sum(p.end - p.start for p in log.describe_topic(topic).partitions)


def read(log: Log, topic: str, expected: int) -> list:
    consumer = log.consumer(None, [topic], reset="earliest")
    try:
        return consume_all(consumer, expected)
    finally:
        consumer.close()


@pytest.fixture
def registry(log: Log):
    registry = LogRegistry(log)
    yield registry
    registry.close()


@pytest.fixture
def clicks(log: Log, registry: LogRegistry, new_topic) -> str:
    name = new_topic(partitions=3)
    Topic(name, Click, key="member_id", time="at").create(log, registry)
    return name


@pytest.fixture
def server(log: Log, registry: LogRegistry):
    app = create_app(log, registry, max_body_bytes=10_000, max_records=20)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_a_good_batch_is_written_with_keys_and_event_times(log, server, clicks) -> None:
    batch = [{"member_id": f"m-{i}", "item": i, "at": f"2024-05-01T12:00:0{i}Z"} for i in range(5)]
    answer = server.post(f"/v1/topics/{clicks}/records?key=member_id&time=at", json=batch)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"produced": 5, "topic": clicks}
    records = sorted(read(log, clicks, 5), key=lambda r: r.key)
    assert [r.key for r in records] == [f"m-{i}".encode() for i in range(5)]
    start = int(datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC).timestamp() * 1000)
    assert [r.timestamp for r in records] == [start + 1000 * i for i in range(5)]
    assert json.loads(records[2].value)["item"] == 2


def test_keys_land_where_the_python_producer_puts_them(log, registry, server, clicks) -> None:
    producer = Topic(clicks, Click, key="member_id").producer(log, registry)
    at = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    for i in range(10):
        producer.send(Click(f"m-{i}", i, at))
    producer.flush()
    producer.close()
    batch = [{"member_id": f"m-{i}", "item": i, "at": at.isoformat()} for i in range(10)]
    assert server.post(f"/v1/topics/{clicks}/records?key=member_id", json=batch).status_code == 200
    partitions: dict[bytes, set[int]] = {}
    for r in read(log, clicks, 20):
        partitions.setdefault(r.key, set()).add(r.partition)
    assert len(partitions) == 10
    assert all(len(p) == 1 for p in partitions.values())


def test_a_mixed_batch_names_every_bad_record_and_writes_nothing(log, server, clicks) -> None:
    good = {"member_id": "m-1", "item": 1, "at": "2024-05-01T12:00:00Z"}
    batch = [
        good,
        {**good, "item": "one"},
        good,
        {"member_id": "m-1", "at": "2024-05-01T12:00:00Z"},
        [1, 2],
        {**good, "at": "yesterday"},
    ]
    answer = server.post(f"/v1/topics/{clicks}/records?key=member_id", json=batch)
    assert answer.status_code == 400
    body = answer.json()
    assert [r["index"] for r in body["records"]] == [1, 3, 4, 5]
    assert "nothing was written" in body["error"]
    errors = {r["index"]: r["error"] for r in body["records"]}
    assert "$.item" in errors[1]
    assert "`item`" in errors[3]
    assert "$.at" in errors[5]
    assert count(log, clicks) == 0
    assert dlq_topic(clicks) not in log.list_topics()


def test_a_topic_without_a_contract_takes_any_objects(log, server, new_topic) -> None:
    topic = new_topic()
    answer = server.post(
        f"/v1/topics/{topic}/records?key=id&time=ts",
        json=[{"id": 7, "ts": 1_700_000_000, "free": {"form": [1]}}],
    )
    assert answer.status_code == 200, answer.text
    [record] = read(log, topic, 1)
    assert (record.key, record.timestamp) == (b"7", 1_700_000_000_000)
    assert json.loads(record.value) == {"id": 7, "ts": 1_700_000_000, "free": {"form": [1]}}
    answer = server.post(f"/v1/topics/{topic}/records?key=id", json=[{"id": 1}, {"other": 2}])
    assert answer.status_code == 400
    assert answer.json()["records"] == [{"index": 1, "error": "the record has no key field 'id'"}]


def test_a_key_field_outside_the_contract_is_refused_up_front(log, server, clicks) -> None:
    answer = server.post(f"/v1/topics/{clicks}/records?key=user", json=[])
    assert answer.status_code == 400
    assert "'user' is not a field" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"member_id": "m-1"}', 400, "JSON array"),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
        (json.dumps([{}] * 21).encode(), 413, "limit is 20"),
        (b"[" + b" " * 10_000 + b"]", 413, "limit"),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(log, server, clicks, body, status, message) -> None:
    answer = server.post(f"/v1/topics/{clicks}/records", content=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert count(log, clicks) == 0


def test_a_body_over_the_limit_without_content_length_is_refused(log, server, clicks) -> None:
    chunks = (b"[" if i == 0 else b" " * 1000 for i in range(20))
    answer = server.post(f"/v1/topics/{clicks}/records", content=chunks)
    assert answer.status_code == 413


def test_unknown_and_internal_topics(server) -> None:
    answer = server.post("/v1/topics/no-such-topic/records", json=[{"a": 1}])
    assert answer.status_code == 404
    assert "no topic named 'no-such-topic'" in answer.json()["error"]
    assert server.post("/v1/topics/_loopline_schemas/records", json=[]).status_code == 403
    assert server.post("/v1/topics/bad name!/records", json=[]).status_code == 400


def test_a_configured_token_is_required(log, registry, clicks, caplog) -> None:
    good = [{"member_id": "m-1", "item": 1, "at": "2024-05-01T12:00:00Z"}]
    path = f"/v1/topics/{clicks}/records"
    with running(create_app(log, registry, token=TOKEN)) as url, httpx.Client(base_url=url) as c:
        missing = c.post(path, json=good)
        wrong = c.post(path, json=good, headers={"Authorization": "Bearer nope"})
        basic = c.post(path, json=good, headers={"Authorization": f"Basic {TOKEN}"})
        right = c.post(path, json=good, headers={"Authorization": f"Bearer {TOKEN}"})
        health = c.get("/healthz")
    for answer in (missing, wrong, basic):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in answer.text
    assert right.status_code == 200
    assert health.json() == {"status": "ok"}
    assert count(log, clicks) == 1
    assert TOKEN not in caplog.text


def test_the_openapi_document_describes_the_endpoint(server) -> None:
    document = server.get("/openapi.json").json()
    operation = document["paths"]["/v1/topics/{topic}/records"]["post"]
    assert "nothing is written" in operation["description"].lower()
    assert {"200", "400", "401", "404", "413"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"topic", "key", "time"}
    assert operation["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    assert "/healthz" in document["paths"]


def test_an_event_time_the_log_cannot_take_is_a_400_on_both_backends(log, server, clicks) -> None:
    # Kafka refuses records stamped more than an hour ahead; the edge says so, as a 400.
    batch = [
        {"member_id": "m-1", "item": 1, "at": "2024-05-01T12:00:00Z"},
        {"member_id": "m-2", "item": 2, "at": "2999-01-01T00:00:00Z"},
    ]
    answer = server.post(f"/v1/topics/{clicks}/records?key=member_id&time=at", json=batch)
    assert answer.status_code == 400, answer.text
    assert [r["index"] for r in answer.json()["records"]] == [1]
    assert "in the future" in answer.json()["records"][0]["error"]
    assert count(log, clicks) == 0


def test_one_record_too_large_for_the_log_writes_nothing(log, registry, new_topic) -> None:
    # On Kafka one oversized record once failed mid-batch: 503, the records before it
    # written anyway, and each retry wrote them again. Now: checked up front, nothing written.
    topic = new_topic()
    batch = [{"a": "small-1"}, {"a": "x" * 1_100_000}, {"a": "small-2"}]
    app = create_app(log, registry, max_body_bytes=4_000_000)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(3):  # a client that retries must not duplicate anything either
            answer = client.post(f"/v1/topics/{topic}/records", json=batch)
            assert answer.status_code == 413, answer.text
            assert [r["index"] for r in answer.json()["records"]] == [1]
            assert "nothing was written" in answer.json()["error"]
        fits = client.post(f"/v1/topics/{topic}/records", json=[batch[0], batch[2]])
        assert fits.status_code == 200, fits.text
    assert count(log, topic) == 2
