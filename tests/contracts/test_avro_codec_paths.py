"""The Avro codec's short cuts give what the general path gives (bench/contracts.py)."""

from __future__ import annotations

import datetime
import io

import fastavro
import msgspec
from hypothesis import given
from hypothesis import strategies as st

from loopline.contracts import AvroCodec, ContractViolation, avro_schema
from loopline.contracts.wire import frame


class Click(msgspec.Struct):
    member_id: str
    item: int
    score: float
    at: datetime.datetime
    tags: list[str] = []
    counts: dict[str, int] = {}
    referrer: str | None = None


SCHEMA = avro_schema(Click)
PARSED = fastavro.parse_schema(SCHEMA)
LONG = st.integers(-(2**63), 2**63 - 1)
clicks = st.builds(
    Click,
    member_id=st.text(),
    item=LONG,
    score=st.floats(allow_nan=False),
    at=st.datetimes(
        min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1)
    ).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=datetime.UTC)),
    tags=st.lists(st.text(), max_size=3),
    counts=st.dictionaries(st.text(), LONG, max_size=3),
    referrer=st.none() | st.text(),
)


def reference(click: Click) -> bytes:
    """The general path: every value turned into builtins, then written."""
    body = io.BytesIO()
    fields = msgspec.to_builtins(click, builtin_types=(datetime.datetime,))
    fastavro.schemaless_writer(body, PARSED, fields)
    return frame(1, body.getvalue())


@given(clicks)
def test_a_flat_record_is_written_as_the_general_path_writes_it(click: Click) -> None:
    codec = AvroCodec(Click, SCHEMA, 1, lambda _id: SCHEMA)
    data = codec.encode(click)
    assert data == reference(click)
    assert codec.decode(data) == click


@given(clicks)
def test_a_record_of_another_schema_id_is_read_by_resolution(click: Click) -> None:
    older = {**SCHEMA, "fields": [f for f in SCHEMA["fields"] if f["name"] != "referrer"]}
    writer = AvroCodec(Click, older, 1, lambda _id: older)
    reader = AvroCodec(Click, SCHEMA, 2, {1: older, 2: SCHEMA}.__getitem__)
    read = reader.decode(writer.encode(msgspec.structs.replace(click, referrer=None)))
    assert read == msgspec.structs.replace(click, referrer=None)


def test_a_wrong_field_is_still_named_on_the_short_path() -> None:
    codec = AvroCodec(Click, SCHEMA, 1, lambda _id: SCHEMA)
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    bad = Click("m-1", "seven", 0.5, at)  # type: ignore[arg-type]
    try:
        codec.encode(bad)
    except ContractViolation as exc:
        assert "$.item" in str(exc)
    else:
        raise AssertionError("a str in an int field was written")
