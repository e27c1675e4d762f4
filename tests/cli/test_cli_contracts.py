"""`loopline contracts`, `topics create --contract`, contract checks in `produce`, `loopline dlq`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from loopline.cli import cli
from loopline.log import open_log

CLICK_V1 = {
    "type": "record",
    "name": "Click",
    "fields": [{"name": "member_id", "type": "string"}, {"name": "item", "type": "long"}],
}


@pytest.fixture
def url(tmp_path) -> str:
    return f"embedded:{tmp_path / 'log'}"


def run(url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--log", url, *args], input=input)


def write(tmp_path, name: str, document: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_register_check_show_list(url, tmp_path):
    v1 = write(tmp_path, "click.avsc", CLICK_V1)
    assert run(url, "contracts", "register", "clicks", "--schema", v1).exit_code == 0
    incompatible = write(
        tmp_path,
        "click2.avsc",
        {
            **CLICK_V1,
            "fields": [{"name": "member_id", "type": "string"}, {"name": "item", "type": "string"}],
        },
    )
    checked = run(url, "contracts", "check", "clicks", "--schema", incompatible)
    assert checked.exit_code == 1
    assert "field 'item' changed type long -> string" in checked.stderr
    refused = run(url, "contracts", "register", "clicks", "--schema", incompatible)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: contract 'clicks' v2 is not backward compatible")
    json_schema = write(
        tmp_path,
        "click3.json",
        {
            "title": "Click",
            "type": "object",
            "required": ["member_id", "item"],
            "properties": {
                "member_id": {"type": "string"},
                "item": {"type": "integer"},
                "page": {"type": "string"},
            },
        },
    )
    assert (
        "compatible (backward)"
        in run(url, "contracts", "check", "clicks", "--schema", json_schema).output
    )
    assert run(url, "contracts", "register", "clicks", "--schema", json_schema).exit_code == 0
    shown = json.loads(run(url, "contracts", "show", "clicks").output)
    assert shown["version"] == 2 and shown["versions"] == [1, 2]
    assert [f["name"] for f in shown["schema"]["fields"]] == ["member_id", "item", "page"]
    assert (
        json.loads(run(url, "contracts", "show", "clicks", "--version", "1").output)["schema"]
        == CLICK_V1
    )
    assert run(url, "contracts", "list").output.split("\t")[:2] == ["clicks", "2"]


def test_bad_schema_files_are_explained(url, tmp_path):
    not_json = tmp_path / "broken.avsc"
    not_json.write_text("{")
    result = run(url, "contracts", "register", "x", "--schema", str(not_json))
    assert result.exit_code == 1 and "is not valid JSON" in result.stderr
    not_record = write(tmp_path, "enum.avsc", {"type": "enum", "name": "E", "symbols": ["A"]})
    result = run(url, "contracts", "register", "x", "--schema", not_record)
    assert result.exit_code == 1 and "record" in result.stderr
    open_log(url).close()  # a log that exists, without the contract
    unknown = run(url, "contracts", "show", "nope")
    assert unknown.exit_code == 1
    assert "loopline contracts register nope" in unknown.stderr


def test_bound_topic_refuses_lines_that_break_the_contract(url, tmp_path):
    v1 = write(tmp_path, "click.avsc", CLICK_V1)
    run(url, "contracts", "register", "clicks", "--schema", v1)
    created = run(url, "topics", "create", "clicks", "--contract", "clicks", "--encoding", "avro")
    assert created.exit_code == 0, created.output
    assert "bound to contract 'clicks' (avro)" in created.output
    lines = '{"member_id": "m1", "item": 1}\n{"member_id": "m2", "item": "two"}\n'
    produced = run(url, "produce", "clicks", "--key", "member_id", input=lines)
    assert produced.exit_code == 1
    assert "line 2 breaks contract 'clicks' v1" in produced.stderr
    assert "$.item" in produced.stderr
    assert "produced the 1 record before it" in produced.stderr
    out = run(
        url, "consume", "clicks", "--from-beginning", "--max", "5", "--timeout", "1", "--meta"
    )
    (record,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert record["key"] == "m1"
    assert record["value"]["$base64"]  # Avro in the Confluent wire format, not JSON text


def test_unknown_contract_creates_no_topic(url):
    result = run(url, "topics", "create", "t", "--contract", "nope")
    assert result.exit_code == 1
    assert "no contract named 'nope'" in result.stderr
    assert "t" not in run(url, "topics", "list").output.split()


def test_dlq_inspect_and_replay_after_the_contract_is_fixed(url, tmp_path):
    import msgspec

    from loopline.contracts import LogRegistry, Topic
    from loopline.log import open_log

    class Visit(msgspec.Struct):
        page: str

    log = open_log(url)
    registry = LogRegistry(log)
    Topic("visits", Visit).create(log, registry)
    raw = log.producer()
    raw.send("visits", b'{"page": 7}', b"m-1")
    raw.send("visits", b'{"page": "home"}', b"m-2")
    raw.send("visits", b"{junk", b"m-3")
    raw.flush()
    consumer = Topic("visits", Visit).consumer(log, registry, group="app", reset="earliest")
    assert [m.value.page for m in consumer.poll(timeout=1.0)] == ["home"]
    consumer.commit()
    consumer.close()

    inspected = run(url, "dlq", "inspect", "visits")
    letters = [json.loads(line) for line in inspected.stdout.splitlines()]
    assert [d["source"]["offset"] for d in letters] == [0, 2]
    assert "$.page" in letters[0]["reason"] and letters[0]["contract"] == "visits v1"
    assert letters[0]["value"] == {"page": 7}

    # Fix the contract: pages may be numbers too. Replay moves the first letter back.
    fixed = {
        "type": "record",
        "name": "Visit",
        "fields": [{"name": "page", "type": ["string", "long"]}],
    }
    registry.register("visits", fixed)
    replayed = run(url, "dlq", "replay", "visits")
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 1 to visits; 1 still failing" in replayed.output
    pending = [json.loads(x) for x in run(url, "dlq", "inspect", "visits").stdout.splitlines()]
    assert len(pending) == 1 and "not valid JSON" in pending[0]["reason"]
    assert len(run(url, "dlq", "inspect", "visits", "--all").stdout.splitlines()) == 3
    again = run(url, "dlq", "replay", "visits")
    assert "replayed 0 to visits; 1 still failing" in again.output
    reader = log.consumer(None, ["visits"], reset="earliest")
    values = [r.value for r in reader.poll(timeout=1.0)]
    assert values[-1] == b'{"page":7}' and len(values) == 4
    reader.close()
    registry.close()
    log.close()


@pytest.mark.parametrize("encoding", ["avro", "json"])
def test_consume_decode_reads_through_the_topics_contract(url, tmp_path, encoding):
    run(url, "contracts", "register", "clicks", "--schema", write(tmp_path, "c.avsc", CLICK_V1))
    run(url, "topics", "create", "clicks", "--contract", "clicks", "--encoding", encoding)
    lines = '{"member_id": "m1", "item": 1}\n{"member_id": "m2", "item": 2}\n'
    assert run(url, "produce", "clicks", input=lines).exit_code == 0
    log = open_log(url)  # a record written past the contract, by another client
    producer = log.producer()
    producer.send("clicks", b"\x00\x00\x00\x00\x63not avro")
    producer.flush()
    log.close()
    out = run(url, "consume", "clicks", "--from-beginning", "--timeout", "1", "--decode")
    assert out.exit_code == 0, out.output
    values = [json.loads(line) for line in out.stdout.splitlines()]
    assert values[:2] == [{"member_id": "m1", "item": 1}, {"member_id": "m2", "item": 2}]
    assert "$base64" in values[2] or isinstance(values[2], str)  # shown as it is
    assert "warning: clicks[0]@2 does not decode with contract 'clicks' v1: " in out.stderr


def test_consume_decode_needs_a_contract(url):
    run(url, "topics", "create", "plain")
    out = run(url, "consume", "plain", "--from-beginning", "--timeout", "1", "--decode")
    assert out.exit_code == 1
    assert out.stderr == (
        "error: --decode: topic 'plain' is bound to no contract; bind one "
        "(loopline topics create plain --contract NAME) or read without --decode\n"
    )
