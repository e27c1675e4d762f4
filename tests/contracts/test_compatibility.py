"""Contract schema compatibility: the mode matrix, messages, recursion, and agreement with fastavro.

fastavro is the referee: where a test says "compatible", fastavro must read the
writer's bytes with the reader's schema, and where it says "not", fastavro must refuse.
Apache Avro's own static checker (the ``avro`` package) is a second referee: on every
pair of schemas it parses, its verdict is loopline's (docs/decisions/0018).
"""

from __future__ import annotations

import doctest
import io
import itertools
import json
import pickle
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro.read import SchemaResolutionError
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loopline.contracts import compatibility
from loopline.contracts.compatibility import (
    PRIMITIVES,
    Incompatibility,
    IncompatibleSchema,
    Mode,
    can_read,
    check,
    problems_by_version,
)

MODES: tuple[Mode, ...] = (
    "backward",
    "forward",
    "full",
    "none",
    "backward_transitive",
    "forward_transitive",
    "full_transitive",
)


def record(*fields: dict[str, Any], name: str = "Click") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields)}


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def color(*symbols: str) -> dict[str, Any]:
    return {"type": "enum", "name": "Color", "symbols": list(symbols)}


def address(zip_type: str) -> dict[str, Any]:
    return record(fld("city", "string"), fld("zip", zip_type), name="Address")


@dataclass(frozen=True)
class Change:
    old: Any
    new: Any
    old_datum: Any  # written with `old`, chosen to exercise the change
    new_datum: Any


ID = fld("item_id", "string")
CHANGES: dict[str, Change] = {
    "add field with default": Change(
        record(ID),
        record(ID, fld("country", "string", default="NL")),
        {"item_id": "i1"},
        {"item_id": "i1", "country": "DE"},
    ),
    "add field without default": Change(
        record(ID),
        record(ID, fld("country", "string")),
        {"item_id": "i1"},
        {"item_id": "i1", "country": "DE"},
    ),
    "remove field with default": Change(
        record(ID, fld("country", "string", default="NL")),
        record(ID),
        {"item_id": "i1", "country": "DE"},
        {"item_id": "i1"},
    ),
    "remove field without default": Change(
        record(ID, fld("country", "string")),
        record(ID),
        {"item_id": "i1", "country": "DE"},
        {"item_id": "i1"},
    ),
    "promote int->long": Change(
        record(fld("count", "int")), record(fld("count", "long")), {"count": 3}, {"count": 3}
    ),
    "demote long->int": Change(
        record(fld("count", "long")), record(fld("count", "int")), {"count": 3}, {"count": 3}
    ),
    "change string->int": Change(
        record(fld("item_id", "string")),
        record(fld("item_id", "int")),
        {"item_id": "i1"},
        {"item_id": 1},
    ),
    "make field optional": Change(
        record(fld("email", "string")),
        record(fld("email", ["null", "string"], default=None)),
        {"email": "a@b.c"},
        {"email": None},
    ),
    "make optional field required": Change(
        record(fld("email", ["null", "string"], default=None)),
        record(fld("email", "string")),
        {"email": None},
        {"email": "a@b.c"},
    ),
    "add enum symbol": Change(
        record(fld("color", color("RED", "GREEN"))),
        record(fld("color", color("RED", "GREEN", "BLUE"))),
        {"color": "RED"},
        {"color": "BLUE"},
    ),
    "remove enum symbol": Change(
        record(fld("color", color("RED", "GREEN", "BLUE"))),
        record(fld("color", color("RED", "GREEN"))),
        {"color": "BLUE"},
        {"color": "RED"},
    ),
    "nested record field change": Change(
        record(fld("address", address("string"))),
        record(fld("address", address("int"))),
        {"address": {"city": "Utrecht", "zip": "3511"}},
        {"address": {"city": "U", "zip": 3511}},
    ),
    "nested record field promoted": Change(
        record(fld("address", address("int"))),
        record(fld("address", address("long"))),
        {"address": {"city": "Utrecht", "zip": 3511}},
        {"address": {"city": "U", "zip": 3511}},
    ),
    "array item type change": Change(
        record(fld("tags", {"type": "array", "items": "int"})),
        record(fld("tags", {"type": "array", "items": "string"})),
        {"tags": [1, 2]},
        {"tags": ["a"]},
    ),
    "map value change": Change(
        record(fld("scores", {"type": "map", "values": "int"})),
        record(fld("scores", {"type": "map", "values": "double"})),
        {"scores": {"a": 1}},
        {"scores": {"a": 1.5}},
    ),
    "rename with alias": Change(
        record(fld("user_id", "string")),
        record(fld("user", "string", aliases=["user_id"])),
        {"user_id": "u1"},
        {"user": "u1"},
    ),
}

Y, N = True, False
# Which modes accept each change, with a single previous version (Confluent semantics:
# BACKWARD = the new schema reads data written with the previous one).
# fmt: off
EXPECTED: dict[str, tuple[bool, ...]] = {
    #                                back fwd full none back_t fwd_t full_t
    "add field with default":       (Y,   Y,  Y,   Y,   Y,     Y,    Y),
    "add field without default":    (N,   Y,  N,   Y,   N,     Y,    N),
    "remove field with default":    (Y,   Y,  Y,   Y,   Y,     Y,    Y),
    "remove field without default": (Y,   N,  N,   Y,   Y,     N,    N),
    "promote int->long":            (Y,   N,  N,   Y,   Y,     N,    N),
    "demote long->int":             (N,   Y,  N,   Y,   N,     Y,    N),
    "change string->int":           (N,   N,  N,   Y,   N,     N,    N),
    "make field optional":          (Y,   N,  N,   Y,   Y,     N,    N),
    "make optional field required": (N,   Y,  N,   Y,   N,     Y,    N),
    "add enum symbol":              (Y,   N,  N,   Y,   Y,     N,    N),
    "remove enum symbol":           (N,   Y,  N,   Y,   N,     Y,    N),
    "nested record field change":   (N,   N,  N,   Y,   N,     N,    N),
    "nested record field promoted": (Y,   N,  N,   Y,   Y,     N,    N),
    "array item type change":       (N,   N,  N,   Y,   N,     N,    N),
    "map value change":             (Y,   N,  N,   Y,   Y,     N,    N),
    "rename with alias":            (Y,   N,  N,   Y,   Y,     N,    N),
}
# fmt: on
assert EXPECTED.keys() == CHANGES.keys()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("change", list(CHANGES))
def test_matrix(change: str, mode: Mode) -> None:
    c = CHANGES[change]
    accepted = EXPECTED[change][MODES.index(mode)]
    assert (check(mode, c.new, [c.old]) == []) is accepted
    # with one previous version, a transitive mode is its plain mode
    assert check(mode, c.new, [c.old]) == check(mode.split("_")[0], c.new, [c.old])  # type: ignore[arg-type]


def fastavro_reads(writer: Any, reader: Any, datum: Any) -> bool:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer), datum)
    buf.seek(0)
    try:
        fastavro.schemaless_reader(
            buf, fastavro.parse_schema(writer), fastavro.parse_schema(reader)
        )
    except SchemaResolutionError:
        return False
    return True


@pytest.mark.parametrize("change", list(CHANGES))
def test_matrix_agrees_with_fastavro(change: str) -> None:
    c = CHANGES[change]
    assert (can_read(c.new, c.old) == []) is fastavro_reads(c.old, c.new, c.old_datum)
    assert (can_read(c.old, c.new) == []) is fastavro_reads(c.new, c.old, c.new_datum)


SAMPLES = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 2**40,
    "float": 1.5,
    "double": 2.5,
    "bytes": b"ab",
    "string": "ab",
}


PAIRS = list(itertools.product(sorted(PRIMITIVES), repeat=2))


@pytest.mark.parametrize(("writer", "reader"), PAIRS)
def test_primitive_promotions_agree_with_fastavro(writer: str, reader: str) -> None:
    datum = SAMPLES[writer]
    for w, r in [(writer, reader), (writer, ["null", reader]), ([writer, "null"], reader)]:
        if isinstance(w, list) and reader == "null":
            continue  # a union with two nulls is not a schema
        ok = fastavro_reads(record(fld("x", w)), record(fld("x", r)), {"x": datum})
        if isinstance(w, list):  # the reader must also read the null branch
            ok = ok and fastavro_reads(record(fld("x", w)), record(fld("x", r)), {"x": None})
        assert (can_read(record(fld("x", r)), record(fld("x", w))) == []) is ok, (w, r)


def test_logical_types_compare_by_underlying_type() -> None:
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    date = {"type": "int", "logicalType": "date"}
    assert can_read(millis, "long") == can_read("long", millis) == []
    assert can_read(millis, date) == []  # int -> long promotion underneath
    assert [p.message for p in can_read(date, millis)] == ["the schema changed type long -> int"]


def test_enum_default_reads_unknown_symbols() -> None:
    old = record(fld("color", {**color("RED", "GREEN"), "default": "RED"}))
    new = record(fld("color", {**color("RED", "GREEN", "BLUE"), "default": "RED"}))
    assert check("full", new, [old]) == [] and check("full", old, [new]) == []
    assert fastavro_reads(new, old, {"color": "BLUE"})  # read as the default, RED
    assert fastavro_reads(old, new, {"color": "RED"})


# -- messages ----------------------------------------------------------------------------------


def messages(mode: Mode, change: str) -> list[str]:
    c = CHANGES[change]
    return [p.message for p in check(mode, c.new, [c.old])]


def test_messages_name_the_field_and_what_to_do() -> None:
    assert messages("backward", "add field without default") == [
        "field 'country' was added without a default (give it a default or make it optional)"
    ]
    assert messages("forward", "remove field without default") == [
        "field 'country' was removed, but readers of the previous schema require it "
        "(it has no default there; keep the field)"
    ]
    assert messages("backward", "remove enum symbol") == [
        "enum 'Color' lost symbol 'BLUE' (old data may hold it; keep the symbol or give "
        "the enum a default)"
    ]
    assert messages("forward", "add enum symbol")[0].startswith("enum 'Color' gained symbol 'BLUE'")
    assert messages("backward", "make optional field required") == [
        "field 'email' changed type union[null, string] -> string, which cannot read the null "
        "values old data may hold"
    ]
    assert messages("forward", "make field optional") == [
        "field 'email' changed type string -> union[null, string], whose null values readers "
        "of the previous schema cannot read"
    ]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ("change string->int", "item_id", "field 'item_id' changed type string -> int"),
        (
            "nested record field change",
            "address.zip",
            "field 'address.zip' changed type string -> int",
        ),
        ("array item type change", "tags[]", "field 'tags' items: changed type int -> string"),
        ("demote long->int", "count", "field 'count' changed type long -> int"),
        ("map value change", "scores{}", "field 'scores' values: changed type int -> double"),
    ],
)
def test_type_changes_read_old_to_new_in_every_direction(
    change: str, path: str, message: str
) -> None:
    c = CHANGES[change]
    for mode in ("backward", "forward", "full"):
        problems = check(mode, c.new, [c.old])
        if problems:  # a full check finds the same problem twice and reports it once
            assert problems == [Incompatibility(path, message)], mode


def test_renamed_record_needs_an_alias() -> None:
    old = record(fld("id", "string"), name="Click")
    renamed = record(fld("id", "string"), name="Tap")
    assert [p.message for p in can_read(renamed, old)] == [
        "the schema changed record name 'Click' -> 'Tap' (add 'Click' to the new record's aliases)"
    ]
    assert can_read({**renamed, "aliases": ["Click"]}, old) == []
    assert fastavro_reads(old, {**renamed, "aliases": ["Click"]}, {"id": "x"})
    assert not fastavro_reads(old, renamed, {"id": "x"})
    moved = {**old, "namespace": "shop.web"}  # only the unqualified name has to match
    assert can_read(moved, old) == [] and fastavro_reads(old, moved, {"id": "x"})


def test_kind_changes_renamed_enums_and_lost_union_branches() -> None:
    def rec(color_: dict[str, Any], v: Any) -> dict[str, Any]:
        return record(fld("color", color_), fld("v", v))

    old = rec(color("RED"), ["null", "string", "int"])
    renamed = rec({**color("RED"), "name": "Colour"}, "string")
    assert [p.message for p in can_read(renamed, old)] == [
        "field 'color' changed enum name 'Color' -> 'Colour' (add 'Color' to the new enum's "
        "aliases)",
        "field 'v' changed type union[null, string, int] -> string, which cannot read the null "
        "values old data may hold",
        "field 'v' changed type union[null, string, int] -> string, which cannot read the int "
        "values old data may hold",
    ]
    narrower = rec(color("RED"), ["null", "string"])
    assert [p.message for p in can_read(narrower, old)] == [
        "field 'v' changed type union[null, string, int] -> union[null, string], which cannot "
        "read the int values old data may hold"
    ]
    assert not fastavro_reads(old, narrower, {"color": "RED", "v": 3})
    assert fastavro_reads(old, narrower, {"color": "RED", "v": "ok"})
    listed = rec(color("RED"), {"type": "array", "items": "string"})
    assert [p.message for p in can_read(listed, rec(color("RED"), "string"))] == [
        "field 'v' changed type string -> array<string>"
    ]


def test_incompatible_schema_message() -> None:
    v2 = record(fld("item_id", "string"))
    v3 = record(fld("item_id", "long"), fld("country", "string"))
    error = IncompatibleSchema("clicks", 3, 2, "backward", check("backward", v3, [v2]))
    assert str(error) == (
        "contract 'clicks' v3 is not backward compatible with v2: field 'item_id' changed type "
        "string -> long; field 'country' was added without a default (give it a default or make "
        "it optional)"
    )
    assert isinstance(error, ValueError) and len(error.problems) == 2
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    assert "not full transitive compatible" in str(
        IncompatibleSchema("clicks", 3, 1, "full_transitive", error.problems)
    )


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown compatibility mode 'sideways'"):
        check("sideways", "int", ["int"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown type name 'Money'"):
        can_read(record(fld("price", "Money")), "int")
    with pytest.raises(ValueError, match="has no 'fields'"):
        can_read({"type": "record", "name": "R"}, "int")


# -- transitive modes, recursion, names ----------------------------------------------------------


def test_transitive_checks_every_previous_version() -> None:
    v1 = record(fld("a", "int"))
    v2 = record(fld("a", "int"), fld("b", "string", default="x"))
    v3 = record(fld("a", "int"), fld("b", "string"))
    assert check("backward", v3, [v1, v2]) == []
    assert check("full", v3, [v1, v2]) == []
    problems = problems_by_version("backward_transitive", v3, [v1, v2])
    assert list(problems) == [0]  # v3 breaks against v1 only
    assert [p.path for p in check("backward_transitive", v3, [v1, v2])] == ["b"]
    assert [p.path for p in check("full_transitive", v3, [v1, v2])] == ["b"]
    # and forward: v1 requires b, v2 could default it, v3 drops it
    w1, w2, w3 = v3, v2, v1
    assert check("forward", w3, [w1, w2]) == []
    assert list(problems_by_version("forward_transitive", w3, [w1, w2])) == [0]
    assert check("none", w3, [w1, w2]) == [] and check("backward", v1, []) == []


LINKED_LIST = record(fld("value", "int"), fld("next", ["null", "Node"], default=None), name="Node")


def test_recursive_schema() -> None:
    wider = record(fld("value", "long"), fld("next", ["null", "Node"], default=None), name="Node")
    assert can_read(LINKED_LIST, LINKED_LIST) == []
    assert check("backward", wider, [LINKED_LIST]) == []
    assert check("forward", wider, [LINKED_LIST]) == [
        Incompatibility("value", "field 'value' changed type int -> long")
    ]
    datum = {"value": 1, "next": {"value": 2, "next": {"value": 3, "next": None}}}
    assert fastavro_reads(LINKED_LIST, wider, datum)
    assert not fastavro_reads(wider, LINKED_LIST, datum)


def test_named_types_resolve_through_namespaces() -> None:
    money = {"type": "fixed", "name": "Money", "size": 8}
    order = {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [
            fld("price", money),
            fld("refund", ["null", "Money"], default=None),
            fld("history", {"type": "array", "items": "shop.Money"}),
            fld(
                "tree",
                {
                    "type": "record",
                    "name": "Tree",
                    "fields": [fld("children", {"type": "array", "items": "Tree"})],
                },
            ),
        ],
    }
    assert can_read(order, order) == []
    wider = {**order, "fields": [fld("price", {**money, "size": 16}), *order["fields"][1:]]}
    assert [(p.path, p.message) for p in can_read(wider, order)] == [
        ("price", "field 'price' changed fixed 'Money' size 8 -> 16"),
        ("refund", "field 'refund' changed fixed 'Money' size 8 -> 16"),
        ("history[]", "field 'history' items: changed fixed 'Money' size 8 -> 16"),
    ]
    datum = {"price": b"12345678", "refund": None, "history": [], "tree": {"children": []}}
    assert fastavro_reads(order, order, datum) and not fastavro_reads(order, wider, datum)


# -- properties ----------------------------------------------------------------------------------

LOGICAL = [
    {"type": "long", "logicalType": "timestamp-millis"},
    {"type": "int", "logicalType": "date"},
    {"type": "string", "logicalType": "uuid"},
    {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
]


@st.composite
def record_schemas(draw: st.DrawFn) -> dict[str, Any]:
    """Random records with nested named types, namespaces, unions and references."""
    counter = itertools.count()
    defined: list[str] = []  # full names, usable as references from here on

    def named(kind: str, namespace: str) -> tuple[dict[str, Any], str]:
        name = f"{kind.capitalize()}{next(counter)}"
        schema: dict[str, Any] = {"type": kind, "name": name}
        if draw(st.booleans()):
            namespace = draw(st.sampled_from(["", "shop", "shop.web"]))
            schema["namespace"] = namespace
        return schema, f"{namespace}.{name}" if namespace else name

    def type_(depth: int, namespace: str) -> Any:
        kinds = ["primitive", "logical", "enum", "fixed"] + (["ref"] if defined else [])
        if depth < 3:
            kinds += ["array", "map", "union", "record"]
        kind = draw(st.sampled_from(kinds))
        if kind == "primitive":
            return draw(st.sampled_from(sorted(PRIMITIVES)))
        if kind == "logical":
            return draw(st.sampled_from(LOGICAL))
        if kind == "ref":
            return draw(st.sampled_from(defined))
        if kind in ("array", "map"):
            inner = type_(depth + 1, namespace)
            return {"type": kind, "items" if kind == "array" else "values": inner}
        if kind == "union":
            branches = draw(
                st.lists(
                    st.sampled_from(sorted(PRIMITIVES - {"null"})),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
            return ["null", *branches]
        schema, full = named(kind, namespace)
        if kind == "enum":
            schema["symbols"] = draw(st.lists(st.sampled_from("ABCDEF"), min_size=1, unique=True))
        elif kind == "fixed":
            schema["size"] = draw(st.integers(1, 16))
        else:
            inner_ns = full.rpartition(".")[0]
            defined.append(full)  # before the fields: records may refer to themselves
            schema["fields"] = [
                fld(f"f{i}", type_(depth + 1, inner_ns)) for i in range(draw(st.integers(0, 4)))
            ]
        if full not in defined:
            defined.append(full)
        return schema

    schema = type_(0, "")
    return (
        schema
        if isinstance(schema, dict) and schema.get("type") == "record"
        else record(fld("value", schema))
    )


@settings(max_examples=200, deadline=None)
@given(record_schemas())
def test_identical_schemas_are_compatible_in_every_mode(schema: dict[str, Any]) -> None:
    assert can_read(schema, schema) == []
    for mode in MODES:
        assert check(mode, schema, [schema, schema]) == []


@settings(max_examples=200, deadline=None)
@given(record_schemas(), record_schemas())
def test_full_is_backward_and_forward(new: dict[str, Any], old: dict[str, Any]) -> None:
    backward, forward = check("backward", new, [old]), check("forward", new, [old])
    assert backward == can_read(new, old)
    assert (check("full", new, [old]) == []) is (backward == [] and forward == [])
    assert check("full_transitive", new, [old]) == check("full", new, [old])


def apache_avro_reads(reader: Any, writer: Any) -> bool | None:
    """Apache Avro's verdict, or None for a schema it does not parse (it has no Java-style
    fallback to the null namespace for a name used inside another namespace)."""
    try:
        parsed = [avro.schema.parse(json.dumps(s)) for s in (reader, writer)]
    except avro.errors.SchemaParseException:
        return None
    result = ReaderWriterCompatibilityChecker().get_compatibility(*parsed)
    return result.compatibility is SchemaCompatibilityType.compatible


@pytest.mark.parametrize("change", list(CHANGES))
def test_matrix_agrees_with_apache_avro(change: str) -> None:
    c = CHANGES[change]
    assert (can_read(c.new, c.old) == []) is apache_avro_reads(c.new, c.old)
    assert (can_read(c.old, c.new) == []) is apache_avro_reads(c.old, c.new)


@settings(max_examples=300, deadline=None)
@given(record_schemas(), record_schemas())
def test_verdicts_agree_with_apache_avro(reader: dict[str, Any], writer: dict[str, Any]) -> None:
    theirs = apache_avro_reads(reader, writer)
    assume(theirs is not None)
    assert (can_read(reader, writer) == []) is theirs


def test_module_doctests() -> None:
    assert doctest.testmod(compatibility).failed == 0
