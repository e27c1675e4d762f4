"""A PostgreSQL table's columns as an Avro contract, and its values as record fields.

Each column becomes a field of the same name. Nullable columns are optional
(``["null", T]``, default null); a column with a constant default carries it
as the field's default, so ``ALTER TABLE ... ADD COLUMN c int NOT NULL DEFAULT
0`` is a backward compatible new version. Types:

============================================  ===============================
PostgreSQL                                    Avro (value in the JSON record)
============================================  ===============================
boolean                                       boolean
smallint, integer, bigint, oid                long
real, double precision, numeric              double (numeric: rounded, as
                                              Debezium's ``decimal.handling.mode=double``)
timestamp, timestamptz                        long timestamp-micros (ISO 8601, UTC;
                                              a timestamp without zone is read as UTC)
date                                          int date (``2024-05-01``)
uuid                                          string uuid
bytea                                         bytes
text, varchar, char, name, json, jsonb,      string (PostgreSQL's text form; the column's
enums and every other type                    type is named in the field's ``doc``)
============================================  ===============================

A value that cannot be converted (``'infinity'`` in a timestamp) raises
`UnmappableValue`, which the connector turns into a dead letter with the reason.

>>> cols = [TableColumn("id", "int4", "b", False, None, True),
...         TableColumn("mood", "mood", "e", True, None, False)]
>>> schema = avro_schema("public", "members", cols)
>>> [(f["name"], f["type"]) for f in schema["fields"]]
[('id', 'long'), ('mood', ['null', 'string'])]
>>> converter("int4", "b")("42"), converter("timestamptz", "b")("2024-05-01 12:00:00.5+00")
(42, datetime.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=datetime.timezone.utc))
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopline.contracts.schemas import Schema


class UnmappableValue(ValueError):
    """A column's value that the contract's type cannot hold."""


@dataclass(frozen=True)
class TableColumn:
    """A column as the catalog describes it (`kind` is ``pg_type.typtype``: ``e`` an enum)."""

    name: str
    type_name: str
    kind: str
    nullable: bool
    default: Any
    in_key: bool


_LONG = ("int2", "int4", "int8", "oid")
_DOUBLE = ("float4", "float8", "numeric")
_TIMESTAMP = ("timestamp", "timestamptz")


def avro_type(type_name: str) -> Any:
    """The Avro type of a PostgreSQL type (by ``pg_type.typname``)."""
    if type_name == "bool":
        return "boolean"
    if type_name in _LONG:
        return "long"
    if type_name in _DOUBLE:
        return "double"
    if type_name in _TIMESTAMP:
        return {"type": "long", "logicalType": "timestamp-micros"}
    if type_name == "date":
        return {"type": "int", "logicalType": "date"}
    if type_name == "uuid":
        return {"type": "string", "logicalType": "uuid"}
    if type_name == "bytea":
        return "bytes"
    return "string"


def avro_schema(schema: str, table: str, columns: list[TableColumn]) -> Schema:
    """The contract of the rows of `schema`.`table`."""
    fields = []
    for column in columns:
        kind = avro_type(column.type_name)
        field: dict[str, Any] = {"name": column.name, "doc": f"PostgreSQL {column.type_name}"}
        if column.nullable:
            field["type"] = ["null", kind]
            field["default"] = None
        else:
            field["type"] = kind
            if column.default is not None:
                field["default"] = _avro_default(column, kind)
        fields.append(field)
    return {
        "type": "record",
        "name": _avro_name(table),
        "namespace": f"loopline.cdc.{_avro_name(schema)}",
        "fields": fields,
    }


def converter(type_name: str, kind: str) -> Callable[[str], Any]:
    """The function from PostgreSQL's text form of a value to the field's value."""
    if type_name == "bool":
        return _bool
    if type_name in _LONG:
        return int
    if type_name in _DOUBLE:
        return _double
    if type_name in _TIMESTAMP:
        return _timestamp
    if type_name == "date":
        return _date
    if type_name == "bytea":
        return _bytea
    return str


def _bool(text: str) -> bool:
    return text == "t"


def _double(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise UnmappableValue(f"{text!r} has no JSON number")
    return value


def _timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UnmappableValue(f"timestamp {text!r} is not a point in time") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UnmappableValue(f"date {text!r} is not a calendar day") from None


def _bytea(text: str) -> bytes:
    return bytes.fromhex(text[2:])  # bytea_output=hex: '\x0a1b'


def _avro_default(column: TableColumn, kind: Any) -> Any:
    """The default in the form Avro schemas write it (a timestamp in micros, a date in days)."""
    value = converter(column.type_name, column.kind)(str(column.default))
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1_000_000)
    if isinstance(value, dt.date):
        return (value - dt.date(1970, 1, 1)).days
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _avro_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if name[:1].isalpha() or name[:1] == "_" else f"_{name}"
