"""The offline builder's contract: source tables, spines, derived features, and its errors."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from loopline.features import (
    Aggregations,
    DeclarationError,
    Derived,
    Entity,
    FeatureSet,
    Table,
    TableFeature,
)
from loopline.features.aggregations import Count, Distinct, Last, Mean, Sum
from loopline.features.offline import BuildError, build, events_table
from loopline.features.offline.events import unusable_records

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000  # on an hour tile
member, item = Entity("member", "member_id"), Entity("item", "item_id")
orders = Aggregations(
    "orders",
    member,
    [
        *Count.per_window("orders", windows=["1h", "lifetime"]),
        *Sum.per_window("spent", field="amount", windows=["1h"]),
        *Distinct.per_window("items", field="item_id", windows=["24h"]),
    ],
    time="at",
)
per_item = Aggregations("orders", item, [*Count.per_window("sales", windows=["24h"])], time="at")


def order(offset: int, minutes: int, member_id: str | None, amount: float, **more) -> dict:
    at = T0 + minutes * 60_000
    value = {"member_id": member_id, "at": at, "amount": amount, "item_id": "i1"} | more
    return {"partition": 0, "offset": offset, "arrival": at + 100, "value": value}


def test_events_table_columns_and_key_fallback() -> None:
    fs = FeatureSet([orders, per_item])
    table = events_table(
        fs,
        "orders",
        [
            order(0, 0, "m1", 5.0),
            order(1, 1, None, 7.0) | {"key": b"m2"},  # the log key names the member
            order(2, 2, None, 9.0),  # no member id at all: unreadable, as online
            order(3, 3, "m1", 1.0, at="not a time"),  # unreadable time
        ],
    )
    assert table.column_names == [
        "partition",
        "offset",
        "arrival",
        "entity.member_id",
        "entity.item_id",
        "event_time",
        "value.amount",
        "value.item_id",
    ]
    assert table.column("entity.member_id").to_pylist() == ["m1", "m2"]
    assert table.column("entity.item_id").to_pylist() == ["i1", "i1"]


def test_time_fields_in_every_encoding_agree() -> None:
    fs = FeatureSet([orders])
    moment = datetime.datetime.fromtimestamp(T0 / 1000, datetime.UTC)
    encodings = [T0, moment, moment.isoformat(), moment.replace(tzinfo=None)]
    rows = [order(i, 0, "m1", 1.0, at=at) for i, at in enumerate(encodings)]
    assert events_table(fs, "orders", rows).column("event_time").to_pylist() == [T0] * 4


def test_spine_rows_keep_their_order_columns_and_duplicates() -> None:
    fs = FeatureSet([orders])
    source = events_table(fs, "orders", [order(i, i, "m1", 2.5) for i in range(5)])
    spine = pa.table(
        {
            "entity": ["m1", "nobody", "m1", "m1"],
            "at": [T0 + 3 * 60_000, T0, T0 + 3 * 60_000, T0 + 10 * 60_000],
            "label": [True, False, None, True],
        }
    )
    out = build(fs, {"orders": source}, spine)
    assert out.select(["entity", "at", "label"]).equals(spine)
    assert out.column("orders_1h").to_pylist() == [3, 0, 3, 5]
    assert out.column("spent_1h").to_pylist() == [7.5, 0.0, 7.5, 12.5]
    assert out.column("items_24h").to_pylist() == [1, 0, 1, 1]


def test_derived_features_run_in_dependency_order_and_default_when_they_raise() -> None:
    averages = Aggregations(
        "orders",
        member,
        [*Mean.per_window("avg", field="amount", windows=["1h"], default=None)],
        time="at",
    )
    doubled = Derived("doubled", ("half",), lambda h: h * 4)  # reads a later derived feature
    half = Derived("half", ("avg_1h",), lambda a: a / 2, default=-1.0)
    label = Derived("label", ("doubled", "orders_lifetime"), lambda d, n: f"{d:.1f}/{n}")
    fs = FeatureSet([orders, averages], derived=[doubled, half, label])
    source = events_table(fs, "orders", [order(0, 0, "m1", 3.0)])
    spine = pa.table({"entity": ["m1", "m2"], "at": [T0 + 60_000, T0 + 60_000]})
    out = build(fs, {"orders": source}, spine)
    assert out.select(["half", "doubled", "label"]).to_pylist() == [
        {"half": 1.5, "doubled": 6.0, "label": "6.0/1"},
        {"half": -1.0, "doubled": -4.0, "label": "-4.0/0"},  # None / 2 raised
    ]


def test_a_default_of_another_type_gives_a_union_column() -> None:
    fs = FeatureSet(
        [Aggregations("orders", member, Count.per_window("n", windows=["1h"], default="none"))]
    )
    source = events_table(fs, "orders", [order(0, 0, "m1", 1.0)])
    spine = pa.table({"entity": ["m1", "m2"], "at": [T0 + 60_000] * 2})
    assert build(fs, {"orders": source}, spine).column("n_1h").to_pylist() == [1, "none"]


def test_features_of_several_entities_need_the_spine_entity_named() -> None:
    fs = FeatureSet([orders, per_item], derived=[Derived("x", ("sales_24h",), lambda s: s)])
    source = events_table(fs, "orders", [order(0, 0, "m1", 1.0)])
    spine = pa.table({"entity": ["i1"], "at": [T0 + 60_000]})
    with pytest.raises(BuildError, match="entity=NAME"):
        build(fs, {"orders": source}, spine)
    out = build(fs, {"orders": source}, spine, entity="item")
    assert out.column_names == ["entity", "at", "sales_24h", "x"]
    assert out.column("x").to_pylist() == [1]


def test_errors_say_what_to_do() -> None:
    fs = FeatureSet([orders], tables=[Table("profiles", member, [TableFeature("age", "age")])])
    source = events_table(fs, "orders", [order(0, 0, "m1", 1.0)])
    spine = pa.table({"entity": ["m1"], "at": [T0]})
    with pytest.raises(BuildError, match="no table for topic 'profiles'"):
        build(fs, {"orders": source}, spine)
    with pytest.raises(BuildError, match="needs columns 'entity' and 'at'"):
        build(fs, {"orders": source}, pa.table({"member": ["m1"], "at": [T0]}))
    with pytest.raises(BuildError, match="names of features"):
        build(fs, {"orders": source}, spine.append_column("orders_1h", pa.array([1])))
    latest = FeatureSet([Aggregations("orders", member, Last.per_window("a", field="amount"))])
    with pytest.raises(BuildError, match="mixes value types"):
        events_table(latest, "orders", [order(0, 0, "m1", 1.0), order(1, 1, "m1", "lots")])
    # a sum reads numbers: "lots" is left out (and counted), as online dead-letters it
    left = events_table(fs, "orders", [order(0, 0, "m1", 1.0), order(1, 1, "m1", "lots")])
    assert (left.column("offset").to_pylist(), unusable_records(left)) == ([0], 1)
    with pytest.raises(BuildError, match="no feature reads topic 'clicks'"):
        events_table(fs, "clicks", [])
    strings = FeatureSet(
        [Aggregations("orders", member, Sum.per_window("s", field="item_id", windows=["1h"]))]
    )
    with pytest.raises(BuildError, match="needs numbers"):  # a table not from events_table
        build(strings, {"orders": source}, spine)
    loop = [Derived("a", ("b",), lambda b: b), Derived("b", ("a",), lambda a: a)]
    with pytest.raises(DeclarationError, match="cycle"):
        build(FeatureSet([orders], derived=loop), {"orders": source}, spine)


def test_late_records_never_count_and_lifetime_last_breaks_ties_by_position() -> None:
    group = Aggregations(
        "orders",
        member,
        [*Count.per_window("n", windows=["lifetime"]), *Last.per_window("latest", field="amount")],
        time="at",
        lateness="1m",
    )
    fs = FeatureSet([group])
    rows = [
        order(0, 10, "m1", 1.0),
        order(1, 8, "m1", 2.0),  # 2 minutes behind the watermark: late
        order(2, 9, "m1", 3.0),  # 1 minute behind: counts
        order(3, 10, "m1", 4.0),  # same event time as offset 0, later position: last
    ]
    spine = pa.table({"entity": ["m1"], "at": [T0 + 11 * 60_000]})
    out = build(fs, {"orders": events_table(fs, "orders", rows)}, spine).to_pylist()
    assert out[0]["n_lifetime"] == 3 and out[0]["latest_lifetime"] == 4.0
