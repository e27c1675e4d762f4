"""Integers a contract cannot hold are refused by name, on JSON and Avro topics alike (issue 13, item 17).

Avro's `long` holds -2**63 .. 2**63-1 and `int` -2**31 .. 2**31-1. A JSON
topic used to take 2**63 on a `long` field (no Avro reader could read it
back) while an Avro topic refused it with "Python int too large to convert
to C long", naming no field.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from loopline.cli import cli
from loopline.contracts import ContractViolation, LogRegistry, Topic
from loopline.contracts.schemas import record_type
from loopline.contracts.topics import codec_for
from loopline.log import open_log
from support import read_all, unique

SCHEMA = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "sensor", "type": "string"},
        {"name": "total", "type": "long"},
        {"name": "small", "type": ["null", "int"], "default": None},
    ],
}
LONG_MAX = 2**63 - 1


def run(url: str, *args: str):
    return CliRunner().invoke(cli, ["--log", url, *args])


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_ingest_dead_letters_integers_outside_their_avro_type(log_url, tmp_path, encoding):
    topic = unique("readings")
    schema = tmp_path / "reading.avsc"
    schema.write_text(json.dumps(SCHEMA))
    assert run(log_url, "contracts", "register", topic, "--schema", str(schema)).exit_code == 0
    created = run(log_url, "topics", "create", topic, "--contract", topic, "--encoding", encoding)
    assert created.exit_code == 0, created.output
    rows = [
        {"sensor": "max", "total": LONG_MAX},
        {"sensor": "min", "total": -(2**63)},
        {"sensor": "over", "total": 2**63},
        {"sensor": "under", "total": -(2**63) - 1},
        {"sensor": "far", "total": 2**70},
        {"sensor": "int-max", "total": 1, "small": 2**31 - 1},
        {"sensor": "int-over", "total": 1, "small": 2**31},
    ]
    data = tmp_path / "readings.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run(log_url, "ingest", str(data), "--topic", topic)
    assert result.exit_code == 0, result.output
    assert "read 7 rows: produced 3" in result.stdout and "dead-lettered 4" in result.stdout

    letters = [json.loads(x) for x in run(log_url, "dlq", "inspect", topic).stdout.splitlines()]
    assert [d["value"]["sensor"] for d in letters] == ["over", "under", "far", "int-over"]
    for letter in letters[:3]:
        assert "$.total" in letter["reason"], letter["reason"]
    assert "$.small" in letters[3]["reason"], letters[3]["reason"]
    assert not any("C long" in d["reason"] for d in letters)

    log = open_log(log_url)
    registry = LogRegistry(log)
    try:
        version = registry.latest(topic)
        codec = codec_for(record_type(version.schema), version, encoding, registry)
        values = [codec.decode(r.value) for r in read_all(log, topic)]
        assert [(v.sensor, v.total) for v in values] == [
            ("max", LONG_MAX),
            ("min", -(2**63)),
            ("int-max", 1),
        ]
    finally:
        registry.close()
        log.close()


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_a_declared_topic_refuses_an_integer_too_large_by_field_name(log, encoding):
    import msgspec

    class Reading(msgspec.Struct):
        sensor: str
        total: int

    registry = LogRegistry(log)
    topic = Topic(unique("readings"), Reading, encoding=encoding)
    topic.create(log, registry)
    producer = topic.producer(log, registry)
    try:
        producer.encode({"sensor": "max", "total": LONG_MAX})
        for value in (2**63, 2**70, -(2**63) - 1):
            for record in ({"sensor": "x", "total": value}, Reading("x", value)):
                with pytest.raises(ContractViolation, match=r"total"):
                    producer.encode(record)
    finally:
        producer.close()
        registry.close()


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_http_ingest_refuses_an_integer_outside_long_by_field(log, encoding):
    import httpx
    import msgspec

    from loopline.connectors.http import create_app
    from loopline.http.server import running

    class Reading(msgspec.Struct):
        sensor: str
        total: int

    registry = LogRegistry(log)
    topic = Topic(unique("readings"), Reading, encoding=encoding)
    topic.create(log, registry)
    app = create_app(log, registry, max_body_bytes=10_000, max_records=20)
    try:
        with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            endpoint = f"/v1/topics/{topic.name}/records"
            body = b'[{"sensor": "ok", "total": 1}, {"sensor": "x", "total": %d}]' % 2**70
            refused = client.post(endpoint, content=body)
            assert refused.status_code == 400, refused.text
            (bad,) = refused.json()["records"]
            assert bad["index"] == 1 and "$.total" in bad["error"], bad
            ok = client.post(endpoint, content=b'[{"sensor": "max", "total": %d}]' % LONG_MAX)
            assert ok.status_code == 200, ok.text
        assert sum(p.end - p.start for p in log.describe_topic(topic.name).partitions) == 1
    finally:
        registry.close()
