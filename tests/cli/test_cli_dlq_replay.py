"""`loopline dlq replay` gives each record back its own key, timestamp and headers (issue 13, item 4).

A replayed record used to be stamped with the time of the replay (the dead
letter's own time), so a late-fixed contract moved events into the present:
wrong windows for features, wrong point-in-time datasets.
"""

from __future__ import annotations

import datetime
import json
import time

import msgspec
from click.testing import CliRunner

from loopline.cli import cli
from loopline.contracts import LogRegistry, Topic
from loopline.log import open_log
from support import consume_all, unique

FIXED = {
    "type": "record",
    "name": "Visit",
    "fields": [
        {"name": "member_id", "type": "string"},
        {"name": "page", "type": ["string", "long"]},
    ],
}


class Visit(msgspec.Struct):
    member_id: str
    page: str


def run(url: str, *args: str):
    return CliRunner().invoke(cli, ["--log", url, *args])


def records(log, topic: str, expected: int) -> list:
    reader = log.consumer(None, [topic], reset="earliest")
    try:
        return consume_all(reader, expected, timeout=30)
    finally:
        reader.close()


def test_replay_restores_key_timestamp_and_headers_of_a_consumers_dead_letter(log_url):
    log = open_log(log_url)
    registry = LogRegistry(log)
    topic = Topic(unique("visits"), Visit)
    topic.create(log, registry)
    an_hour_ago = time.time_ns() // 1_000_000 - 3_600_000
    raw = log.producer()
    headers = (("trace", b"t-1"), ("origin", b"web"))
    raw.send(
        topic.name,
        b'{"member_id": "m-1", "page": 7}',
        b"m-1",
        timestamp=an_hour_ago,
        headers=headers,
    )
    raw.send(topic.name, b'{"member_id": "m-2", "page": "home"}', b"m-2", timestamp=an_hour_ago)
    raw.flush()
    consumer = topic.consumer(log, registry, group=unique(), reset="earliest")
    got = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        got = consumer.poll(timeout=1.0)
    assert [m.value.member_id for m in got] == ["m-2"] and consumer.dead_lettered == 1
    consumer.close()

    registry.register(topic.name, FIXED)  # pages may be numbers too
    replayed = run(log_url, "dlq", "replay", topic.name)
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed 1 to {topic.name}; 0 still failing" in replayed.output
    back = records(log, topic.name, 3)[-1]
    assert (back.key, back.timestamp, back.headers) == (b"m-1", an_hour_ago, headers)
    assert json.loads(back.value) == {"member_id": "m-1", "page": 7}
    registry.close()
    log.close()


def test_replay_restores_key_and_event_time_of_an_ingested_row(log_url, tmp_path):
    topic = unique("visits")
    schema = tmp_path / "visit.avsc"
    schema.write_text(
        json.dumps(
            {
                **FIXED,
                "fields": [
                    *FIXED["fields"][:1],
                    {"name": "page", "type": "string"},
                    {"name": "at", "type": "string"},
                ],
            }
        )
    )
    assert run(log_url, "contracts", "register", topic, "--schema", str(schema)).exit_code == 0
    assert run(log_url, "topics", "create", topic, "--contract", topic).exit_code == 0
    data = tmp_path / "visits.jsonl"
    # Within the hour: Kafka's retention would soon drop records stamped long ago.
    ten = (time.time_ns() // 60_000_000_000 - 50) * 60_000  # a whole minute, 50 minutes ago
    rows = [
        {"member_id": "m-1", "page": "home", "at": _iso(ten)},
        {"member_id": "m-2", "page": 7, "at": _iso(ten + 600_000)},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest = run(
        log_url, "ingest", str(data), "--topic", topic, "--key", "member_id", "--time-column", "at"
    )
    assert "produced 1" in ingest.output and "dead-lettered 1" in ingest.output, ingest.output

    fixed = {**FIXED, "fields": [*FIXED["fields"], {"name": "at", "type": "string"}]}
    log = open_log(log_url)
    registry = LogRegistry(log)
    registry.register(topic, fixed)
    replayed = run(log_url, "dlq", "replay", topic)
    assert replayed.exit_code == 0 and "replayed 1" in replayed.output, replayed.output
    got = records(log, topic, 2)
    assert [(r.key, r.timestamp) for r in got] == [(b"m-1", ten), (b"m-2", ten + 600_000)]
    registry.close()
    log.close()


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
