"""File ingest: CSV, JSON lines and Parquet into topics, checked by contracts, on both backends."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.connectors import IngestReport, count_rows, ingest_file
from loopline.contracts import AvroCodec, DeadLetter, JsonCodec, LogRegistry, dlq_topic, record_type
from loopline.log import Log, TopicNotFound
from loopline.log.partitioner import partition_for
from support import consume_all

TS = {"type": "long", "logicalType": "timestamp-millis"}
ORDER = [
    {"name": "id", "type": "long"},
    {"name": "member", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "at", "type": TS},
]


def schema(name: str, fields: list[dict]) -> dict:
    return {"type": "record", "name": "Row", "fields": fields}


def read(log: Log, topic: str, expected: int, settle: float = 1.0) -> list:
    """Every record of `topic`: the `expected` ones, and any extra that arrives within `settle` s."""
    consumer = log.consumer(None, [topic], reset="earliest")
    try:
        records = consume_all(consumer, expected)
        records += consumer.poll(max_records=10_000, timeout=settle)
        return records
    finally:
        consumer.close()


def read_dlq(log: Log, topic: str, expected: int) -> list[DeadLetter]:
    if expected == 0 and dlq_topic(topic) not in log.list_topics():
        return []
    return [DeadLetter.from_record(r) for r in read(log, dlq_topic(topic), expected)]


@pytest.fixture
def registry(log: Log):
    registry = LogRegistry(log)
    yield registry
    registry.close()


@pytest.fixture
def orders(log, new_topic, registry):
    """A topic bound to the ORDER contract (contract named after the topic: Kafka is shared)."""

    def make(partitions: int = 1, encoding: str = "json") -> str:
        topic = new_topic(partitions)
        registry.register(topic, schema(topic, ORDER))
        registry.bind(topic, topic, encoding)
        return topic

    return make


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


# -- round trips ------------------------------------------------------------------------


def test_csv_rows_reach_the_topic_typed_keyed_and_stamped(log, registry, orders, tmp_path):
    topic = orders()
    path = write_csv(
        tmp_path / "orders.csv",
        "id,member,amount,note,at",
        [
            "1,m-1,9.5,first,2024-05-01T12:00:00Z",
            "2,m-2,10,,2024-05-01T12:00:01.250Z",
            "3,m-1,-0.25,,1714564802",
        ],
    )
    report = ingest_file(log, path, topic, key="member", time_column="at", registry=registry)
    assert report == IngestReport(read=3, produced=3, dead_lettered=0, skipped=0)
    records = read(log, topic, 3)
    codec = JsonCodec(record_type(schema(topic, ORDER)))
    rows = [codec.decode(r.value) for r in records]
    assert [(r.id, r.member, r.amount, r.note) for r in rows] == [
        (1, "m-1", 9.5, "first"),
        (2, "m-2", 10.0, None),
        (3, "m-1", -0.25, None),
    ]
    assert [r.key for r in records] == [b"m-1", b"m-2", b"m-1"]
    assert [r.timestamp for r in records] == [1714564800000, 1714564801250, 1714564802000]
    assert rows[2].at == datetime.datetime(2024, 5, 1, 12, 0, 2, tzinfo=datetime.UTC)


def test_json_lines_convert_strings_and_take_epoch_millis(log, registry, orders, tmp_path):
    topic = orders()
    path = tmp_path / "orders.jsonl"
    path.write_text(
        '{"id": 1, "member": "m-1", "amount": 2.5, "at": 1714564800123}\n'
        "\n"
        '{"id": "2", "member": "m-2", "amount": "3", "note": "n", "at": "2024-05-01T12:00:00Z"}\n'
    )
    report = ingest_file(log, path, topic, key="member", time_column="at", registry=registry)
    assert report == IngestReport(read=2, produced=2, dead_lettered=0)
    records = read(log, topic, 2)
    assert [json.loads(r.value)["id"] for r in records] == [1, 2]
    assert [json.loads(r.value)["note"] for r in records] == [None, "n"]
    assert [r.timestamp for r in records] == [1714564800123, 1714564800000]


def test_parquet_native_types_and_timestamp_column(log, registry, orders, tmp_path):
    topic = orders()
    at = [datetime.datetime(2024, 5, 1, 12, 0, s, 5000, tzinfo=datetime.UTC) for s in range(4)]
    table = pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "member": ["m-1", "m-2", "m-3", "m-1"],
            "amount": [1.0, 2.5, None, 4.0],
            "note": ["x", None, None, "y"],
            "at": pa.array(at, pa.timestamp("us", "UTC")),
        }
    )
    pq.write_table(table, tmp_path / "orders.parquet", row_group_size=2)
    report = ingest_file(
        log, tmp_path / "orders.parquet", topic, key="member", time_column="at", registry=registry
    )
    # amount is required: the row without one is dead-lettered, with the field named.
    assert report == IngestReport(read=4, produced=3, dead_lettered=1)
    records = read(log, topic, 3)
    assert [json.loads(r.value)["id"] for r in records] == [1, 2, 4]
    assert [r.timestamp for r in records] == [1714564800005, 1714564801005, 1714564803005]
    [letter] = read_dlq(log, topic, 1)
    assert letter.reason.startswith("row 3: ") and "$.amount" in letter.reason
    assert count_rows(tmp_path / "orders.parquet") == 4


def test_keys_pick_the_partition_as_kafka_clients_do(log, registry, orders, tmp_path):
    topic = orders(partitions=4)
    lines = [f"{i},member-{i % 13},1.0,,{1714564800 + i}" for i in range(200)]
    path = write_csv(tmp_path / "orders.csv", "id,member,amount,note,at", lines)
    ingest_file(log, path, topic, key="member", registry=registry)
    records = read(log, topic, 200)
    assert len(records) == 200
    assert all(r.partition == partition_for(r.key, 4) for r in records)
    assert len({r.partition for r in records}) > 1


def test_avro_binding_writes_avro_values(log, registry, orders, tmp_path):
    topic = orders(encoding="avro")
    path = write_csv(
        tmp_path / "orders.csv",
        "id,member,amount,note,at",
        ["1,m-1,9.5,,2024-05-01T12:00:00Z", "x,m-2,1,,2024-05-01T12:00:00Z"],
    )
    report = ingest_file(log, path, topic, registry=registry)
    assert (report.produced, report.dead_lettered) == (1, 1)
    version = registry.latest(topic)
    codec = AvroCodec(
        record_type(version.schema), version.schema, version.schema_id, registry.by_id
    )
    [record] = read(log, topic, 1)
    assert codec.decode(record.value).member == "m-1"


# -- bad rows ---------------------------------------------------------------------------


def test_bad_csv_rows_are_dead_lettered_with_row_and_field(log, registry, orders, tmp_path):
    topic = orders()
    path = write_csv(
        tmp_path / "orders.csv",
        "id,member,amount,note,at",
        [
            "1,m-1,9.5,,2024-05-01T12:00:00Z",
            "two,m-2,1,,2024-05-01T12:00:00Z",  # row 2: id is not an int
            "3,m-3,,,2024-05-01T12:00:00Z",  # row 3: amount is required
            "4,,1,,2024-05-01T12:00:00Z",  # row 4: a key of "" is still a key
            "5,m-5,1,,yesterday",  # row 5: not a time
            "6,m-6,1,2024-05-01T12:00:00Z",  # row 6: one cell short
            "7,m-7,1,,2024-05-01T12:00:00Z",
        ],
    )
    report = ingest_file(log, path, topic, key="member", time_column="at", registry=registry)
    assert report == IngestReport(read=7, produced=3, dead_lettered=4)
    assert report.read == report.produced + report.dead_lettered
    assert [json.loads(r.value)["id"] for r in read(log, topic, 3)] == [1, 4, 7]
    letters = {int(d.reason.split(":")[0].split()[1]): d for d in read_dlq(log, topic, 4)}
    assert sorted(letters) == [2, 3, 5, 6]
    assert f"contract {topic!r} v1" in letters[2].reason and "`$.id`" in letters[2].reason
    assert "`$.amount`" in letters[3].reason and "null" in letters[3].reason
    assert "`$.at`" in letters[5].reason
    assert "expected 5 columns, got 4" in letters[6].reason
    assert letters[2].source_topic == f"{path}:2"
    assert json.loads(letters[2].record.value) == {
        "id": "two",
        "member": "m-2",
        "amount": "1",
        "note": None,
        "at": "2024-05-01T12:00:00Z",
    }
    assert letters[2].record.key == b"m-2"
    assert letters[2].contract == f"{topic} v1"


def test_bad_json_lines_are_dead_lettered_as_read(log, registry, orders, tmp_path):
    topic = orders()
    path = tmp_path / "orders.jsonl"
    path.write_bytes(
        b'{"id": 1, "member": "m-1", "amount": 1, "at": 1714564800}\n'
        b'{"id": 2, "member": \n'  # line 2: broken JSON
        b"[1, 2]\n"  # line 3: not an object
        b'{"id": 4, "amount": 1, "at": 1714564800}\n'  # line 4: no key
        b'{"id": 5, "member": "m-5", "amount": {"x": 1}, "at": 1714564800}\n'  # line 5
        b"\xff\xfe\n"  # line 6: not even text
    )
    report = ingest_file(log, path, topic, key="member", time_column="at", registry=registry)
    assert report == IngestReport(read=6, produced=1, dead_lettered=5)
    letters = {d.source_topic: d for d in read_dlq(log, topic, 5)}
    assert sorted(letters) == [f"{path}:{n}" for n in (2, 3, 4, 5, 6)]
    assert letters[f"{path}:2"].record.value == b'{"id": 2, "member": '
    assert letters[f"{path}:2"].reason.startswith("line 2: not valid JSON")
    assert "JSON object" in letters[f"{path}:3"].reason
    assert "`member`" in letters[f"{path}:4"].reason
    assert "`$.amount`" in letters[f"{path}:5"].reason
    assert letters[f"{path}:6"].record.value == b"\xff\xfe"


def test_rows_without_a_key_or_a_readable_time_are_dead_lettered(
    log, registry, new_topic, tmp_path
):
    topic = new_topic()
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"k": "a", "t": "2024-05-01T12:00:00+02:00"}\n'
        '{"t": 1714564800}\n'
        '{"k": "c", "t": "yesterday"}\n'
        '{"k": "d"}\n'
        '{"k": 5, "t": -1}\n'
        '{"k": "f", "t": 1714564800.5}\n'
        '{"k": "g", "t": 1e300}\n'
    )
    report = ingest_file(log, path, topic, key="k", time_column="t", registry=registry)
    assert report == IngestReport(read=7, produced=2, dead_lettered=5)
    records = read(log, topic, 2)
    assert [(r.key, r.timestamp) for r in records] == [(b"a", 1714557600000), (b"f", 1714564800500)]
    reasons = sorted(d.reason for d in read_dlq(log, topic, 5))
    assert reasons[0] == "line 2: no value in key column 'k'"
    assert reasons[1].startswith("line 3: cannot read event time from column 't': 'yesterday'")
    assert reasons[2] == "line 4: no value in time column 't'"
    assert reasons[3].startswith("line 5: cannot read event time") and "before 1970" in reasons[3]
    assert "after the year 9999" in reasons[4]


# -- without a contract ---------------------------------------------------------------------


def test_without_a_contract_rows_are_written_as_json_objects(log, registry, new_topic, tmp_path):
    topic = new_topic()
    path = write_csv(tmp_path / "raw.csv", "a,b", ["1,x", "2,"])
    assert ingest_file(log, path, topic, key="a", registry=registry) == IngestReport(2, 2, 0, 0)
    records = read(log, topic, 2)
    assert [(r.key, json.loads(r.value)) for r in records] == [
        (b"1", {"a": "1", "b": "x"}),
        (b"2", {"a": "2", "b": ""}),
    ]
    lines = tmp_path / "raw.ndjson"
    lines.write_text('{"a": 1, "b": [1, 2]}\nnope\n')
    report = ingest_file(log, lines, topic, registry=registry)
    assert report == IngestReport(read=2, produced=1, dead_lettered=1)
    assert json.loads(read(log, topic, 3)[2].value) == {"a": 1, "b": [1, 2]}


def test_an_explicit_contract_wins_over_no_binding(log, registry, new_topic, tmp_path):
    topic = new_topic()
    registry.register(topic + "-contract", schema(topic, ORDER))
    path = write_csv(tmp_path / "o.csv", "id,member,amount,note,at", ["1,m,2,,1714564800"])
    report = ingest_file(log, path, topic, contract=topic + "-contract", registry=registry)
    assert report.produced == 1
    assert json.loads(read(log, topic, 1)[0].value)["at"] == "2024-05-01T12:00:00Z"


# -- mistakes that stop an ingest before it writes anything ------------------------------------


def test_mistakes_are_refused_before_anything_is_written(log, registry, orders, tmp_path):
    topic = orders()
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl, \.ndjson, \.json .*\.parquet"):
        ingest_file(log, tmp_path / "x.xlsx", topic, registry=registry)
    path = write_csv(tmp_path / "o.csv", "id,member,at", ["1,m,1714564800"])
    with pytest.raises(ValueError, match=r"'amount' \(required by contract"):
        ingest_file(log, path, topic, registry=registry)
    with pytest.raises(ValueError, match=r"'customer' \(key\)"):
        ingest_file(log, path, topic, key="customer", contract=None, registry=registry)
    array = tmp_path / "o.json"
    array.write_text('[{"id": 1}]')
    with pytest.raises(ValueError, match="jq -c"):
        ingest_file(log, array, topic, registry=registry)
    with pytest.raises(TopicNotFound):
        ingest_file(log, path, topic + "-missing", registry=registry)
    with pytest.raises(ValueError, match="bound to contract"):
        ingest_file(log, path, topic, encoding="avro", registry=registry)
    assert read(log, topic, 0, settle=0.5) == []


def test_empty_files_ingest_nothing_and_are_done(log, registry, new_topic, tmp_path):
    topic = new_topic()
    for name, text in [("e.csv", ""), ("h.csv", "a,b\n"), ("e.jsonl", "\n\n")]:
        (tmp_path / name).write_text(text)
        assert ingest_file(log, tmp_path / name, topic, registry=registry) == IngestReport()
        assert ingest_file(log, tmp_path / name, topic, registry=registry) == IngestReport()


def test_count_rows(tmp_path):
    write_csv(tmp_path / "a.csv", "x,y", ["1,2", "3,4", "5,6"])
    (tmp_path / "b.jsonl").write_text('{"x": 1}\n\n{"x": 2}')
    (tmp_path / "c.csv").write_text("x,y\n1,2")
    assert count_rows(tmp_path / "a.csv") == 3
    assert count_rows(tmp_path / "b.jsonl") == 2
    assert count_rows(tmp_path / "c.csv") == 1


# -- exactly once -----------------------------------------------------------------------------


class Stop(Exception):
    pass


def write_orders(folder: Path, fmt: str, rows: list[dict]) -> Path:
    """`rows` as a file of format `fmt` (Parquet in row groups of 100 rows)."""
    path = folder / f"orders.{fmt}"
    if fmt == "csv":
        lines = [",".join("" if v is None else str(v) for v in row.values()) for row in rows]
        return write_csv(path, ",".join(rows[0]), lines)
    if fmt == "jsonl":  # with blank lines, which are not rows
        path.write_text(
            "".join(json.dumps(row) + ("\n\n" if i % 10 else "\n") for i, row in enumerate(rows))
        )
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_an_interrupted_ingest_resumes_without_duplicates(log, registry, orders, tmp_path, fmt):
    topic = orders()
    rows = [
        {"id": i, "member": f"m-{i % 7}", "amount": 1.5, "note": None, "at": 1714564800 + i}
        for i in range(1, 1001)
    ]
    rows[600]["amount"] = None  # one dead letter (amount is required), after the interruption
    path = write_orders(tmp_path, fmt, rows)
    seen: list[int] = []

    def stop_after_three_chunks(n: int) -> None:
        seen.append(n)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        ingest_file(
            log,
            path,
            topic,
            key="member",
            time_column="at",
            registry=registry,
            chunk_rows=150,
            progress=stop_after_three_chunks,
        )
    resumed: list[int] = []
    report = ingest_file(
        log,
        path,
        topic,
        key="member",
        time_column="at",
        registry=registry,
        chunk_rows=150,
        progress=resumed.append,
    )
    assert report == IngestReport(read=550, produced=549, dead_lettered=1, skipped=450)
    assert resumed[0] == 450 and sum(resumed) == 1000
    records = read(log, topic, 999)
    assert sorted(json.loads(r.value)["id"] for r in records) == [
        i for i in range(1, 1001) if i != 601
    ]
    assert all(r.timestamp == (1714564800 + json.loads(r.value)["id"]) * 1000 for r in records)
    [letter] = read_dlq(log, topic, 1)
    assert letter.source_topic == f"{path}:{1141 if fmt == 'jsonl' else 601}"
    again = ingest_file(log, path, topic, key="member", time_column="at", registry=registry)
    assert again == IngestReport(read=0, produced=0, dead_lettered=0, skipped=1000)


def test_the_same_rows_in_another_file_are_ingested_again(log, registry, orders, tmp_path):
    topic = orders()
    a = write_csv(tmp_path / "a.csv", "id,member,amount,note,at", ["1,m,1,,1714564800"])
    b = write_csv(tmp_path / "b.csv", "id,member,amount,note,at", ["1,m,1,,1714564800", ""])
    assert ingest_file(log, a, topic, registry=registry).produced == 1
    assert ingest_file(log, b, topic, registry=registry).produced == 1  # other content, other id
    assert ingest_file(log, a, topic, registry=registry).skipped == 1


def test_rows_stamped_too_far_ahead_are_dead_lettered(log, registry, orders, tmp_path):
    topic = orders()
    path = write_csv(
        tmp_path / "orders.csv",
        "id,member,amount,note,at",
        ["1,m-1,9.5,,2024-05-01T12:00:00Z", "2,m-2,10,,2999-01-01T00:00:00Z"],
    )
    report = ingest_file(log, path, topic, key="member", time_column="at", registry=registry)
    assert report == IngestReport(read=2, produced=1, dead_lettered=1, skipped=0)
    (letter,) = read_dlq(log, topic, 1)
    assert "row 2" in letter.reason and "in the future" in letter.reason


def test_a_time_of_zero_read_row_by_row_is_dead_lettered(log, registry, new_topic, tmp_path):
    # Found by the fuzz test: times parsed by the row-by-row fallback were not checked.
    topic = new_topic()
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": 0, "name": "", "at": 0}\n{"id": 1, "name": "x", "at": 1714564800}\n')
    report = ingest_file(log, path, topic, time_column="at", registry=registry)
    assert report == IngestReport(read=2, produced=1, dead_lettered=1, skipped=0)
    (letter,) = read_dlq(log, topic, 1)
    assert "not a time after 1970" in letter.reason
