"""The Avro codec's short cuts give what the general path gives (bench/contracts.py), for
every kind of field a record type can hold."""

from __future__ import annotations

import datetime
import decimal
import io
import uuid
from typing import Annotated

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
MILLIS = st.datetimes(
    min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=datetime.UTC))
clicks = st.builds(
    Click,
    member_id=st.text(),
    item=LONG,
    score=st.floats(allow_nan=False),
    at=MILLIS,
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


class Renamed(msgspec.Struct, rename="camel"):
    member_id: str
    seen_at: datetime.datetime
    page_tags: list[str] = []


def test_a_renamed_record_is_written_and_read_by_its_contract_names() -> None:
    schema = avro_schema(Renamed)
    codec = AvroCodec(Renamed, schema, 1, lambda _id: schema)
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    record = Renamed("m-1", at, ["feed"])
    data = codec.encode(record)
    body = io.BytesIO(data[5:])
    assert fastavro.schemaless_reader(body, fastavro.parse_schema(schema), None) == {
        "memberId": "m-1",
        "seenAt": at,
        "pageTags": ["feed"],
    }
    assert codec.decode(data) == record


class Kinds(msgspec.Struct):
    """Every scalar a record's fields can hold, as a contract writes them."""

    text: str
    number: int
    share: float
    flag: bool
    blob: bytes
    at: datetime.datetime
    day: datetime.date
    id: uuid.UUID
    price: decimal.Decimal
    either: int | str
    maybe: str | None = None
    items: list[int] = []
    weights: dict[str, float] = {}


KINDS = avro_schema(Kinds)
kinds = st.builds(
    Kinds,
    text=st.text(),
    number=LONG,
    share=st.floats(allow_nan=False),
    flag=st.booleans(),
    blob=st.binary(max_size=8),
    at=MILLIS,
    day=st.dates(),
    id=st.uuids(),
    price=st.decimals(allow_nan=False, allow_infinity=False),
    either=LONG | st.text(),
    maybe=st.none() | st.text(),
    items=st.lists(LONG, max_size=3),
    weights=st.dictionaries(st.text(), st.floats(allow_nan=False), max_size=3),
)


@given(kinds)
def test_every_kind_of_field_is_written_as_its_contract_says_and_read_back(
    record: Kinds,
) -> None:
    codec = AvroCodec(Kinds, KINDS, 1, lambda _id: KINDS)
    data = codec.encode(record)
    value = fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(KINDS), None)
    read = codec.decode(data)
    general = msgspec.convert(value, Kinds)
    assert read == general == record
    for field in msgspec.structs.fields(Kinds):
        assert type(getattr(read, field.name)) is type(getattr(general, field.name)), field.name


class Bounded(msgspec.Struct):
    member_id: str
    clicks: Annotated[int, msgspec.Meta(ge=0)]


def test_a_value_the_avro_type_allows_and_the_record_type_does_not_is_refused_on_read() -> None:
    schema = avro_schema(Bounded)
    codec = AvroCodec(Bounded, schema, 1, lambda _id: schema)
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, fastavro.parse_schema(schema), {"member_id": "m", "clicks": -1}
    )
    try:
        codec.decode(frame(1, body.getvalue()))
    except ContractViolation as exc:
        assert "$.clicks" in str(exc)
    else:
        raise AssertionError("a negative count was read into a field of counts >= 0")
