"""Codecs: a record type's values to bytes and back, validating on the way.

`JsonCodec` writes plain JSON (any Kafka client can read it); `AvroCodec`
writes Avro in the Confluent wire format, resolving the writer's schema by id
so that records written with an older (compatible) contract version are read
into the current type. Both raise `ContractViolation` with the field and the
reason when a record breaks the contract.

>>> import msgspec
>>> class Click(msgspec.Struct):
...     member_id: str
...     item: int
>>> codec = JsonCodec(Click)
>>> codec.encode({"member_id": "m-1", "item": 7})
b'{"member_id":"m-1","item":7}'
>>> codec.decode(b'{"member_id":"m-1","item":7}')
Click(member_id='m-1', item=7)
>>> codec.encode({"member_id": "m-1", "item": "seven"})
Traceback (most recent call last):
...
loopline.contracts.codecs.ContractViolation: Expected `int`, got `str` - at `$.item`

A time field (Avro ``timestamp-millis``) takes RFC 3339 text or, as its
contract says, epoch milliseconds; both are written as RFC 3339:

>>> class Seen(msgspec.Struct):
...     at: datetime.datetime
>>> JsonCodec(Seen).decode(b'{"at": 1714564800000}')
Seen(at=datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc))
>>> JsonCodec(Seen).encode({"at": 1714564800000})
b'{"at":"2024-05-01T12:00:00Z"}'
"""

from __future__ import annotations

import datetime
import io
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import fastavro
import msgspec
from msgspec import inspect as mi

from loopline.contracts.schemas import Schema, out_of_range, unbounded_ints
from loopline.contracts.schemas import record_type as contract_type
from loopline.contracts.wire import HEADER_SIZE, WireFormatError, frame, unframe

# what fastavro writes as it is; a Decimal's contract is a string (`avro_schema`)
_PASSTHROUGH = (datetime.datetime, datetime.date, uuid.UUID, bytes)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _time_fields(record_type: type) -> tuple[str, ...]:
    """The encoded names of `record_type`'s top-level datetime fields (also optional ones)."""
    if not (isinstance(record_type, type) and issubclass(record_type, msgspec.Struct)):
        return ()
    found = []
    for field in msgspec.structs.fields(record_type):
        kinds = getattr(field.type, "__args__", None) or (field.type,)
        if datetime.datetime in kinds:
            found.append(field.encode_name)
    return tuple(found)


def _millis_as_datetimes(obj: Any, names: tuple[str, ...]) -> bool:
    """Turn epoch-millisecond ints of fields `names` of dict `obj` into datetimes, in place.

    Whether any was turned: when none was, the record's fault lies elsewhere.
    """
    if not isinstance(obj, dict):
        return False
    turned = False
    for name in names:
        value = obj.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                obj[name] = _EPOCH + datetime.timedelta(milliseconds=value)
            except OverflowError:
                continue  # left as it is: the type check says what is wrong
            turned = True
    return turned


class ContractViolation(ValueError):
    """A record that does not follow its contract (says which field and why)."""


class Codec(Protocol):
    encoding: str

    def encode(self, record: Any, *, checked: bool = False) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class JsonCodec:
    """JSON values, validated against the record type on encode and on decode."""

    encoding = "json"

    def __init__(self, record_type: type, schema: Schema | None = None) -> None:
        self.record_type = record_type
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(record_type)
        # JSON has no time type: epoch ms (the contract's timestamp-millis) is read too,
        # on a second pass taken only by records whose typed decode failed.
        self._time_fields = _time_fields(record_type)
        # A declared `int` takes any integer, its contract's `long` does not: with the
        # contract's `schema`, values of such a type are also checked against the contract.
        self._ranges = (
            msgspec.json.Decoder(contract_type(schema))
            if schema is not None and unbounded_ints(record_type)
            else None
        )

    def encode(self, record: Any, *, checked: bool = False) -> bytes:
        """`record` (a record_type or a dict) as JSON, its fields checked against the type;
        `checked`: the caller has checked a record_type's fields, as its own code made them."""
        if isinstance(record, dict):
            try:
                record = msgspec.convert(record, self.record_type)
            except msgspec.ValidationError as exc:
                record = dict(record)
                if not _millis_as_datetimes(record, self._time_fields):
                    raise ContractViolation(str(exc)) from None
                try:
                    record = msgspec.convert(record, self.record_type)
                except msgspec.ValidationError as again:
                    raise ContractViolation(str(again)) from None
            return self._in_range(self._encoder.encode(record))
        if not isinstance(record, self.record_type):
            raise ContractViolation(
                f"expected a {self.record_type.__name__} or a dict, got {type(record).__name__}"
            )
        data = self._encoder.encode(record)
        if checked:
            return data
        self.decode(data)  # a Struct's fields are not type-checked on construction
        return self._in_range(data)

    def _in_range(self, data: bytes) -> bytes:
        if self._ranges is not None:
            try:
                self._ranges.decode(data)
            except msgspec.ValidationError as exc:
                raise ContractViolation(str(exc)) from None
        return data

    def decode(self, data: bytes) -> Any:
        if data is None:
            raise ContractViolation("a tombstone (no value) is not a record")
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            if self._time_fields:
                obj = msgspec.json.decode(data)
                if _millis_as_datetimes(obj, self._time_fields):
                    try:
                        return msgspec.convert(obj, self.record_type)
                    except msgspec.ValidationError as again:
                        raise ContractViolation(str(again)) from None
            raise ContractViolation(str(exc)) from None
        except msgspec.DecodeError as exc:
            raise ContractViolation(f"not valid JSON: {exc}") from None


class AvroCodec:
    """Avro values in the Confluent wire format (magic byte, schema id, body).

    The per-record work besides fastavro's own is kept to what the contract
    needs (bench/contracts.py measures it against bare fastavro): a record
    type whose fields are all scalars, or lists and maps of them, becomes a
    dict by `msgspec.structs.asdict` (no walk of its values); the header is
    written into the body's buffer rather than joined to it; a value written
    with the codec's own schema is read without schema resolution, and
    without copying its body out of the frame.
    """

    encoding = "avro"

    def __init__(
        self,
        record_type: type,
        schema: Schema,
        schema_id: int,
        writer_schema: Callable[[int], Schema],
    ) -> None:
        self.record_type = record_type
        self.schema_id = schema_id
        self._parsed = fastavro.parse_schema(schema)
        self._writer_schema = writer_schema
        self._readers: dict[int, Any] = {}
        self._header = frame(schema_id, b"")
        self._as_fields = (
            msgspec.structs.asdict if _flat(record_type) else _builtins  # same dict, faster
        )

    def encode(self, record: Any, *, checked: bool = False) -> bytes:
        """`record` as Avro in the wire format (see `JsonCodec.encode` for `checked`)."""
        try:
            if isinstance(record, self.record_type):
                fields = self._as_fields(record)
                if not checked:  # a Struct is not checked on construction
                    msgspec.convert(fields, self.record_type)
            else:
                fields = self._as_fields(msgspec.convert(record, self.record_type))
        except msgspec.ValidationError as exc:
            raise ContractViolation(str(exc)) from None
        body = io.BytesIO()
        body.write(self._header)
        try:
            fastavro.schemaless_writer(body, self._parsed, fields)
        except (TypeError, ValueError, OverflowError) as exc:
            if (found := out_of_range(fields)) is not None:  # the writer names no field
                raise ContractViolation(_too_large(*found)) from None
            raise ContractViolation(f"cannot write as Avro: {exc}") from None
        return body.getvalue()

    def decode(self, data: bytes) -> Any:
        if data is None:
            raise ContractViolation("a tombstone (no value) is not a record")
        if data[:HEADER_SIZE] == self._header:  # written as read: nothing to resolve
            schema_id, writer, reader = self.schema_id, self._parsed, None
        else:
            try:
                schema_id, _ = unframe(data, copy=False)
            except WireFormatError as exc:
                raise ContractViolation(str(exc)) from None
            writer, reader = self._writer(schema_id), self._parsed
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            value = fastavro.schemaless_reader(body, writer, reader)
        except Exception as exc:
            raise ContractViolation(
                f"not a valid Avro body for schema id {schema_id}: {exc}"
            ) from None
        try:
            return msgspec.convert(value, self.record_type)
        except msgspec.ValidationError as exc:
            raise ContractViolation(str(exc)) from None

    def _writer(self, schema_id: int) -> Any:
        """The parsed writer's schema of `schema_id`, looked up once."""
        writer = self._readers.get(schema_id)
        if writer is None:
            try:
                writer = self._readers[schema_id] = fastavro.parse_schema(
                    self._writer_schema(schema_id)
                )
            except KeyError:
                raise ContractViolation(f"unknown schema id {schema_id}") from None
        return writer


def _builtins(record: Any) -> Any:
    return msgspec.to_builtins(record, builtin_types=_PASSTHROUGH)


_SCALARS = (
    mi.StrType,
    mi.IntType,
    mi.FloatType,
    mi.BoolType,
    mi.BytesType,
    mi.NoneType,
    mi.DateTimeType,
    mi.DateType,
    mi.UUIDType,
)


def _flat(record_type: type) -> bool:
    """Whether `msgspec.structs.asdict` of a `record_type` is what `_builtins` makes of it:
    every field a scalar fastavro writes as it is, an optional one, or a list or a
    ``dict[str, ...]`` of those (no nested record, enum, set or tuple to turn into builtins),
    each field named in its contract as in Python (no `rename`).

    >>> Click = msgspec.defstruct("Click", [("item", int), ("tags", list[str], []),
    ...                                      ("at", datetime.datetime | None, None)])
    >>> Nested = msgspec.defstruct("Nested", [("click", Click)])
    >>> _flat(Click), _flat(Nested)
    (True, False)
    """
    info = mi.type_info(record_type)
    if not isinstance(info, mi.StructType):
        return False

    def scalar(t: mi.Type) -> bool:
        if isinstance(t, mi.UnionType):
            return all(isinstance(x, _SCALARS) for x in t.types)
        return isinstance(t, _SCALARS)

    def plain(t: mi.Type) -> bool:
        if isinstance(t, mi.ListType):
            return scalar(t.item_type)
        if isinstance(t, mi.DictType):
            return isinstance(t.key_type, mi.StrType) and scalar(t.value_type)
        return scalar(t)

    return all(plain(f.type) and f.encode_name == f.name for f in info.fields)


def _too_large(where: str, value: int) -> str:
    return f"Expected `int` within an Avro long (-2**63 .. 2**63-1), got {value} - at `{where}`"
