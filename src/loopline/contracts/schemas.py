"""Record types and their Avro schemas, in both directions.

A contract's body is an Avro schema. A user usually declares it as a record
type (a `msgspec.Struct`, see docs/decisions/0005); `avro_schema` derives the
schema. A contract kept as a file (``.avsc`` or JSON Schema) goes the other
way: `record_type` builds a Struct from the schema, so rows read from a CSV
file are validated and converted by the same machinery.

>>> import datetime
>>> class Click(msgspec.Struct):
...     member_id: str
...     item: int
...     at: datetime.datetime
...     tags: list[str] = []
...     score: float | None = None
>>> schema = avro_schema(Click)
>>> [f["name"] for f in schema["fields"]]
['member_id', 'item', 'at', 'tags', 'score']
>>> schema["fields"][4]
{'name': 'score', 'type': ['null', 'double'], 'default': None}
>>> Rebuilt = record_type(schema)
>>> msgspec.convert({"member_id": "m-1", "item": "7", "at": 0}, Rebuilt, strict=False).item
7

An Avro ``long`` holds -2**63 .. 2**63-1 and an ``int`` -2**31 .. 2**31-1, so
the Struct refuses other integers by field, whatever the encoding:

>>> msgspec.convert({"member_id": "m-1", "item": 2**63, "at": 0}, Rebuilt)
Traceback (most recent call last):
...
msgspec.ValidationError: Expected `int` <= 9223372036854775807 - at `$.item`
"""

from __future__ import annotations

import datetime
import enum
import uuid
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import inspect as mi

Schema = Any  # a parsed Avro schema: a str, a list (union) or a dict

_PRIMITIVES: dict[type, Schema] = {}
_TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


class SchemaError(ValueError):
    """A record type or schema that loopline cannot turn into the other."""


def avro_schema(record: type, namespace: str | None = None) -> dict:
    """The Avro schema of a record type (a msgspec Struct)."""
    info = mi.type_info(record)
    if not isinstance(info, mi.StructType):
        raise SchemaError(f"{record!r} is not a record type: declare it as a msgspec.Struct")
    return _struct(info, namespace, set())


def _struct(info: mi.StructType, namespace: str | None, seen: set[str]) -> Schema:
    name = info.cls.__name__
    if name in seen:
        return name
    seen.add(name)
    fields = []
    for f in info.fields:
        field: dict[str, Any] = {"name": f.encode_name, "type": _type(f.type, namespace, seen)}
        if f.default is not msgspec.NODEFAULT:
            field["default"] = _default(f.default)
        elif f.default_factory is not msgspec.NODEFAULT:
            field["default"] = _default(f.default_factory())
        if f.default is None and isinstance(field["type"], list):
            field["type"] = ["null", *[t for t in field["type"] if t != "null"]]
        fields.append(field)
    out: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
    if namespace:
        out["namespace"] = namespace
    doc = (info.cls.__doc__ or "").strip()
    if doc and not doc.startswith(name + "("):
        out["doc"] = doc.splitlines()[0]
    return out


def _default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return msgspec.to_builtins(value)


def _type(t: mi.Type, namespace: str | None, seen: set[str]) -> Schema:
    if isinstance(t, mi.StrType):
        return "string"
    if isinstance(t, mi.BoolType):
        return "boolean"
    if isinstance(t, mi.IntType):
        return "long"
    if isinstance(t, mi.FloatType):
        return "double"
    if isinstance(t, mi.BytesType | mi.ByteArrayType):
        return "bytes"
    if isinstance(t, mi.NoneType):
        return "null"
    if isinstance(t, mi.DateTimeType):
        return dict(_TIMESTAMP)
    if isinstance(t, mi.DateType):
        return {"type": "int", "logicalType": "date"}
    if isinstance(t, mi.UUIDType):
        return {"type": "string", "logicalType": "uuid"}
    if isinstance(t, mi.DecimalType):
        return "string"
    if isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return {"type": "array", "items": _type(t.item_type, namespace, seen)}
    if isinstance(t, mi.DictType):
        if not isinstance(t.key_type, mi.StrType):
            raise SchemaError("Avro maps need str keys: use dict[str, ...]")
        return {"type": "map", "values": _type(t.value_type, namespace, seen)}
    if isinstance(t, mi.StructType):
        return _struct(t, namespace, seen)
    if isinstance(t, mi.EnumType):
        return {
            "type": "enum",
            "name": t.cls.__name__,
            "symbols": [m.value if isinstance(m.value, str) else m.name for m in t.cls],
        }
    if isinstance(t, mi.LiteralType) and all(isinstance(v, str) for v in t.values):
        name = "Literal_" + "_".join(v for v in t.values if v.isidentifier())
        return {"type": "enum", "name": name, "symbols": list(t.values)}
    if isinstance(t, mi.UnionType):
        branches = [_type(x, namespace, seen) for x in t.types]
        if "null" in branches:
            branches = ["null", *[b for b in branches if b != "null"]]
        return branches
    if isinstance(t, mi.AnyType):
        raise SchemaError("a field typed Any has no contract: give it a concrete type")
    raise SchemaError(
        f"no Avro type for {t!r}: use str, int, float, bool, bytes, datetime, "
        "date, UUID, list, dict[str, ...], a nested Struct, an Enum or a Literal"
    )


# -- Avro schema -> record type --------------------------------------------------------

LONG = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
INT = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]

_AVRO_TO_PY: dict[str, Any] = {
    "string": str,
    "long": LONG,
    "int": INT,
    "double": float,
    "float": float,
    "boolean": bool,
    "bytes": bytes,
    "null": type(None),
}


def record_type(schema: Schema) -> type[msgspec.Struct]:
    """A msgspec Struct that validates records of the Avro record `schema`."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError("a contract's schema must be an Avro record (type: record)")
    return _to_py(schema, {})


def _to_py(schema: Schema, named: dict[str, Any]) -> Any:
    if isinstance(schema, str):
        if schema in _AVRO_TO_PY:
            return _AVRO_TO_PY[schema]
        if schema in named:
            return named[schema]
        raise SchemaError(f"unknown Avro type {schema!r}")
    if isinstance(schema, list):
        branches = [_to_py(s, named) for s in schema]
        union = branches[0]
        for b in branches[1:]:
            union = union | b
        return union
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis"):
        return datetime.datetime
    if logical == "date":
        return datetime.date
    if logical == "uuid":
        return uuid.UUID
    if logical == "decimal":
        return Decimal
    if kind == "record":
        fields = []
        for f in schema["fields"]:
            ftype = _to_py(f["type"], named)
            if "default" in f:
                default = f["default"]
                if isinstance(default, list | dict):
                    default = msgspec.field(default_factory=lambda d=default: type(d)(d))
                fields.append((f["name"], ftype, default))
            else:
                fields.append((f["name"], ftype))
        fields.sort(key=lambda f: len(f) == 3)  # fields without defaults first
        cls = msgspec.defstruct(schema["name"], fields, kw_only=True)
        named[schema["name"]] = cls
        return cls
    if kind == "enum":
        cls = enum.Enum(schema["name"], {s: s for s in schema["symbols"]}, type=str)
        named[schema["name"]] = cls
        return cls
    if kind == "array":
        return list[_to_py(schema["items"], named)]
    if kind == "map":
        return dict[str, _to_py(schema["values"], named)]
    if kind == "fixed":
        return bytes
    if isinstance(kind, str | list | dict):
        return _to_py(kind, named)
    raise SchemaError(f"cannot read Avro schema {schema!r}")


def json_schema_to_avro(document: dict, name: str | None = None) -> dict:
    """An Avro record schema from a JSON Schema object (properties, required, types).

    >>> json_schema_to_avro({"title": "Click", "type": "object", "required": ["item"],
    ...     "properties": {"item": {"type": "integer"}, "note": {"type": "string"}}})["fields"]
    [{'name': 'item', 'type': 'long'}, {'name': 'note', 'type': ['null', 'string'], 'default': None}]
    """
    if document.get("type") != "object":
        raise SchemaError('a JSON Schema contract must describe an object ("type": "object")')
    record_name = name or document.get("title") or "Record"
    required = set(document.get("required", []))
    fields = []
    for prop, spec in document.get("properties", {}).items():
        avro = _json_type(spec, f"{record_name}_{prop}")
        if prop in required:
            field: dict[str, Any] = {"name": prop, "type": avro}
            if "default" in spec:
                field["default"] = spec["default"]
        else:
            field = {"name": prop, "type": ["null", avro], "default": None}
        fields.append(field)
    return {"type": "record", "name": _identifier(record_name), "fields": fields}


def _json_type(spec: dict, name: str) -> Schema:
    kind = spec.get("type")
    if isinstance(kind, list):
        branches = [_json_type({**spec, "type": k}, name) for k in kind]
        return ["null", *[b for b in branches if b != "null"]] if "null" in branches else branches
    if "enum" in spec and all(isinstance(v, str) for v in spec["enum"]):
        return {"type": "enum", "name": _identifier(name), "symbols": spec["enum"]}
    if kind == "string" and spec.get("format") == "date-time":
        return dict(_TIMESTAMP)
    simple = {
        "string": "string",
        "integer": "long",
        "number": "double",
        "boolean": "boolean",
        "null": "null",
    }
    if kind in simple:
        return simple[kind]
    if kind == "array":
        return {"type": "array", "items": _json_type(spec.get("items", {}), name + "_item")}
    if kind == "object" and "properties" in spec:
        return json_schema_to_avro(spec, name)
    if kind == "object":
        values = spec.get("additionalProperties", {"type": "string"})
        return {
            "type": "map",
            "values": _json_type(values if isinstance(values, dict) else {}, name),
        }
    raise SchemaError(f"JSON Schema type {kind!r} of {name!r} has no contract equivalent")


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out if out and not out[0].isdigit() else "_" + out


def out_of_range(value: Any, path: str = "$") -> tuple[str, int] | None:
    """Where `value` (a record as builtins) holds an integer no Avro ``long`` can, and it.

    For the error of an Avro writer, which says "Python int too large to
    convert to C long" and names no field.

    >>> out_of_range({"id": "a", "counts": [1, 2**64]})
    ('$.counts[1]', 18446744073709551616)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return (path, value) if not -(2**63) <= value < 2**63 else None
    items: Any = ()
    if isinstance(value, dict):
        items = ((f"{path}.{name}", item) for name, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    for where, item in items:
        if (found := out_of_range(item, where)) is not None:
            return found
    return None


def unbounded_ints(record: type) -> bool:
    """Whether the record type has an integer field without the bounds of an Avro ``long``.

    A declared `int` takes any Python integer; its contract field is a
    ``long``, so such a type needs its values checked against the contract.

    >>> class Click(msgspec.Struct):
    ...     item: int
    >>> unbounded_ints(Click), unbounded_ints(record_type(avro_schema(Click)))
    (True, False)
    """
    return _unbounded(mi.type_info(record), set())


def _unbounded(t: mi.Type, seen: set[type]) -> bool:
    if isinstance(t, mi.IntType):
        return t.ge is None or t.le is None or t.ge < -(2**63) or t.le >= 2**63
    if isinstance(t, mi.StructType):
        if t.cls in seen:
            return False
        seen.add(t.cls)
        return any(_unbounded(f.type, seen) for f in t.fields)
    if isinstance(t, mi.UnionType):
        return any(_unbounded(x, seen) for x in t.types)
    if isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _unbounded(t.item_type, seen)
    if isinstance(t, mi.DictType):
        return _unbounded(t.value_type, seen)
    return False
