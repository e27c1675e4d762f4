"""`loopline produce` and `loopline consume` on the embedded log, through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from loopline.cli import cli
from loopline.log import Log, TopicConfig, open_log
from loopline.log.partitioner import partition_for
from support import read_all


@pytest.fixture
def url(tmp_path) -> str:
    return f"embedded:{tmp_path / 'log'}"


@pytest.fixture
def log(url: str):
    handle = open_log(url)
    yield handle
    handle.close()


def run(url: str, *args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--log", url, *args], input=input)


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def test_round_trip_with_key_uses_murmur2_partitions(url: str, log: Log) -> None:
    log.create_topic("clicks", TopicConfig(partitions=4))
    events = [{"member": f"member-{i % 7}", "item": i} for i in range(50)]
    produced = run(url, "produce", "clicks", "--key", "member", input=jsonl(*events))
    assert produced.exit_code == 0, produced.output
    assert produced.stderr == "produced 50 records to clicks\n"

    records = read_all(log, "clicks")
    assert len(records) == 50
    for record in records:
        assert record.partition == partition_for(record.key, 4)
        assert json.loads(record.value)["member"] == record.key.decode()
    # per key, the order of the input is kept
    items_of_3 = [json.loads(r.value)["item"] for r in records if r.key == b"member-3"]
    assert items_of_3 == [e["item"] for e in events if e["member"] == "member-3"]

    consumed = run(url, "consume", "clicks", "--from-beginning", "--timeout", "0.3")
    assert consumed.exit_code == 0, consumed.output
    lines = consumed.stdout.splitlines()
    assert sorted(lines, key=lambda s: json.loads(s)["item"]) == [json.dumps(e) for e in events]
    assert consumed.stderr == "consumed 50 records from clicks\n"


def test_value_is_the_line_as_written_and_blank_lines_are_skipped(url: str, log: Log) -> None:
    log.create_topic("t")
    text = '{"b": 1.50,  "a": [1, 2]}\n\n   \n"text"\r\n42\n{"last": true}'
    result = run(url, "produce", "t", input=text)
    assert result.exit_code == 0, result.output
    assert [r.value for r in read_all(log, "t")] == [
        b'{"b": 1.50,  "a": [1, 2]}',
        b'"text"',
        b"42",
        b'{"last": true}',
    ]
    out = run(url, "consume", "t", "--from-beginning", "--timeout", "0.2").stdout
    assert out.splitlines() == ['{"b": 1.50,  "a": [1, 2]}', '"text"', "42", '{"last": true}']


def test_numeric_key_field_is_its_text(url: str, log: Log) -> None:
    log.create_topic("t", TopicConfig(partitions=3))
    run(url, "produce", "t", "--key", "id", input=jsonl({"id": 42}))
    [record] = read_all(log, "t")
    assert record.key == b"42"
    assert record.partition == partition_for(b"42", 3)


def test_meta_output(url: str, log: Log) -> None:
    log.create_topic("t", TopicConfig(partitions=2))
    producer = log.producer()
    producer.send(
        "t",
        b'{"item": 7}',
        key=b"member-42",
        timestamp=1_700_000_000_000,
        headers=(("source", b"web"), ("raw", b"\xff\x00")),
    )
    producer.send("t", b"not json", partition=0, timestamp=1)
    producer.send("t", b"\xff\xfe", partition=0, timestamp=2)
    producer.send("t", None, key=b"gone", partition=0, timestamp=3)
    producer.close()

    result = run(url, "consume", "t", "--from-beginning", "--meta", "--timeout", "0.2")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_value = {json.dumps(r["value"]): r for r in rows}
    keyed = by_value['{"item": 7}']
    assert keyed == {
        "topic": "t",
        "partition": partition_for(b"member-42", 2),
        "offset": 0,
        "timestamp": 1_700_000_000_000,
        "key": "member-42",
        "value": {"item": 7},
        "headers": [["source", "web"], ["raw", {"$base64": "/wA="}]],
    }
    assert by_value['"not json"']["key"] is None
    assert by_value['{"$base64": "//4="}']["offset"] == 1 + by_value['"not json"']["offset"]
    assert by_value["null"]["key"] == "gone"

    plain = run(url, "consume", "t", "--from-beginning", "--timeout", "0.2").stdout.splitlines()
    assert sorted(plain) == sorted(['{"item": 7}', '"not json"', '{"$base64":"//4="}', "null"])


def test_invalid_json_stops_after_delivering_the_lines_before(url: str, log: Log) -> None:
    log.create_topic("t")
    text = '{"n": 1}\n{"n": 2}\n{"n": oops}\n{"n": 4}\n'
    result = run(url, "produce", "t", input=text)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [message] = result.stderr.splitlines()
    assert message.startswith("error: line 3 is not valid JSON")
    assert "produced the 2 records before it to 't'" in message
    assert sum(p.records for p in log.describe_topic("t").partitions) == 2
    assert [r.value for r in read_all(log, "t")] == [b'{"n": 1}', b'{"n": 2}']


def test_invalid_line_after_several_batches(url: str, log: Log) -> None:
    log.create_topic("t", TopicConfig(partitions=2))
    lines = [json.dumps({"id": i}) for i in range(25_000)]
    lines[21_000] = "{"
    result = run(url, "produce", "t", "--key", "id", input="\n".join(lines))
    assert result.exit_code == 1
    assert "line 21001 " in result.stderr
    assert sum(p.records for p in log.describe_topic("t").partitions) == 21_000


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"other": 1}', "has no field 'member'"),
        ("[1, 2]", "is not a JSON object"),
        ('{"member": null}', "has no field 'member'"),
    ],
)
def test_missing_key_field_names_the_line(url: str, log: Log, line: str, problem: str) -> None:
    log.create_topic("t")
    result = run(url, "produce", "t", "--key", "member", input=f'{{"member": "a"}}\n{line}\n')
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: line 2 {problem}")
    assert len(read_all(log, "t")) == 1


def test_explicit_partition(url: str, log: Log) -> None:
    log.create_topic("t", TopicConfig(partitions=3))
    result = run(
        url,
        "produce",
        "t",
        "--partition",
        "2",
        "--key",
        "k",
        input=jsonl(*({"k": i} for i in range(10))),
    )
    assert result.exit_code == 0, result.output
    assert {r.partition for r in read_all(log, "t")} == {2}
    result = run(url, "produce", "t", "--partition", "3", input=jsonl({}))
    assert result.exit_code == 1
    assert result.stderr == "error: topic 't' has partitions 0..2, not 3\n"


def test_consume_group_resumes_where_it_stopped(url: str, log: Log) -> None:
    log.create_topic("t", TopicConfig(partitions=2))
    run(url, "produce", "t", input=jsonl(*({"n": i} for i in range(5))))
    first = run(url, "consume", "t", "--group", "g", "--from-beginning", "--timeout", "0.3")
    assert sorted(first.stdout.splitlines()) == [json.dumps({"n": i}) for i in range(5)]

    run(url, "produce", "t", input=jsonl({"n": 5}, {"n": 6}))
    second = run(url, "consume", "t", "--group", "g", "--from-beginning", "--timeout", "0.3")
    assert sorted(second.stdout.splitlines()) == ['{"n": 5}', '{"n": 6}']
    third = run(url, "consume", "t", "--group", "g", "--timeout", "0.2")
    assert third.stdout == ""
    # another group starts afresh
    other = run(url, "consume", "t", "--group", "h", "--from-beginning", "--timeout", "0.3")
    assert len(other.stdout.splitlines()) == 7


def test_consume_max_commits_only_what_was_written(url: str, log: Log) -> None:
    log.create_topic("t")
    run(url, "produce", "t", input=jsonl(*({"n": i} for i in range(10))))
    first = run(url, "consume", "t", "--group", "g", "--from-beginning", "--max", "3")
    assert first.exit_code == 0
    assert first.stdout.splitlines() == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    second = run(url, "consume", "t", "--group", "g", "--max", "4")
    assert second.stdout.splitlines() == ['{"n": 3}', '{"n": 4}', '{"n": 5}', '{"n": 6}']
    nogroup = run(url, "consume", "t", "--from-beginning", "--max", "1")
    assert nogroup.stdout == '{"n": 0}\n'


def test_consume_without_from_beginning_reads_only_new_records(url: str, log: Log) -> None:
    log.create_topic("t")
    run(url, "produce", "t", input=jsonl({"old": 1}))
    result = run(url, "consume", "t", "--timeout", "0.2")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "consumed 0 records from t\n"
