"""File ingest on junk: whatever the rows hold, nothing crashes and every row is accounted for."""

from __future__ import annotations

import json
import uuid

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.connectors import ingest_file
from loopline.contracts import LogRegistry, dlq_topic
from loopline.log import Log
from support import consume_all, examples

CONTRACT = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.integers(0, 2_000_000_000_000).map(str),
)
good_rows = st.fixed_dictionaries(
    {
        "id": st.integers(-(2**63), 2**63 - 1),
        "name": st.text(max_size=12),
        "at": st.one_of(st.integers(0, 4_000_000_000_000), st.just("2024-05-01T12:00:00Z")),
    },
    optional={"score": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))},
)
junk_rows = st.dictionaries(
    st.sampled_from(["id", "name", "score", "at", "x"]), scalars, max_size=5
)
json_lines = st.one_of(
    good_rows.map(lambda r: json.dumps(r).encode()),
    junk_rows.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=20).map(lambda t: t.replace("\n", "").encode()),
    st.lists(scalars, max_size=3).map(lambda v: json.dumps(v).encode()),
)
csv_cells = st.one_of(
    st.text(max_size=10),
    st.integers().map(str),
    st.just(""),
    st.just('"'),
    st.sampled_from(["2024-05-01T12:00:00Z", "1714564800", "1.5", "nan", ",", "\r"]),
)
csv_lines = st.lists(csv_cells, min_size=1, max_size=6).map(lambda cells: ",".join(cells))


def held(log: Log, topic: str, expected: int, settle: float) -> int:
    """How many records `topic` holds (reading them: on Kafka, transaction markers take offsets).

    Records beyond `expected` would arrive within `settle` seconds (the embedded
    log has them all at once).
    """
    if expected == 0 and topic not in log.list_topics():
        return 0
    consumer = log.consumer(None, [topic], reset="earliest")
    try:
        records = consume_all(consumer, expected, timeout=20)
        return len(records) + len(consumer.poll(max_records=10_000, timeout=settle))
    finally:
        consumer.close()


def check_accounted(
    log, registry, new_topic, path, time_column: str | None, contracted: bool, settle: float
) -> int | None:
    """Rows read, every one accounted for; None when the file was refused, nothing written."""
    topic = new_topic(2)
    if contracted:
        registry.register(topic, CONTRACT)
        registry.bind(topic, topic)
    try:
        report = ingest_file(
            log, path, topic, key="name", time_column=time_column, registry=registry, chunk_rows=7
        )
    except ValueError as exc:  # no row has the key or time column: refused before writing
        assert "has no column" in str(exc)
        assert held(log, topic, 0, settle) == 0 and held(log, dlq_topic(topic), 0, settle) == 0
        return None
    assert report.read == report.produced + report.dead_lettered
    assert held(log, topic, report.produced, settle) == report.produced
    assert held(log, dlq_topic(topic), report.dead_lettered, settle) == report.dead_lettered
    assert report.skipped == 0
    return report.read


def _object(line: bytes) -> dict | None:
    try:
        row = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    return row if isinstance(row, dict) else None


def test_junk_json_lines_are_all_accounted_for(log, backend, new_topic, tmp_path):
    registry = LogRegistry(log)

    @settings(
        max_examples=examples(backend, 60, 6),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(json_lines, max_size=40), st.booleans(), st.booleans())
    def check(lines: list[bytes], stamped: bool, contracted: bool) -> None:
        path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        read = check_accounted(
            log,
            registry,
            new_topic,
            path,
            "at" if stamped else None,
            contracted,
            settle=0.5 if backend == "kafka" else 0.0,
        )
        objects = [row for row in map(_object, lines) if row is not None]
        columns = set().union(*objects)
        if objects and ("name" not in columns or (stamped and "at" not in columns)):
            assert read is None  # a mistyped column is refused, not dead-lettered row by row
        else:
            assert read == sum(1 for line in lines if not (line + b"\n").isspace())

    check()
    registry.close()


def test_junk_csv_rows_are_all_accounted_for(log, backend, new_topic, tmp_path):
    registry = LogRegistry(log)

    @settings(
        max_examples=examples(backend, 60, 6),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(csv_lines, max_size=40), st.booleans(), st.booleans())
    def check(lines: list[str], stamped: bool, contracted: bool) -> None:
        path = tmp_path / f"{uuid.uuid4().hex}.csv"
        path.write_text("\n".join(["id,name,score,at", *lines]) + "\n")
        read = check_accounted(
            log,
            registry,
            new_topic,
            path,
            "at" if stamped else None,
            contracted,
            settle=0.5 if backend == "kafka" else 0.0,
        )
        body = "\n".join(lines)
        assert read <= body.count("\n") + body.count("\r") + 1  # a row per line at most

    check()
    registry.close()
