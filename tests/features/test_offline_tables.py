"""Table features offline: the latest value by position among records known at T.

A brute-force oracle reads docs/decisions/0008 literally: among the entity's
records with arrival <= T, the one with the greatest (partition, offset); a
tombstone (or a missing field) gives the default.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.features import Aggregations, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Last
from loopline.features.offline import build, events_table

BASE = 1_700_000_000_000
MEMBERS = ["a", "b", "c"]
member = Entity("member", key="member_id")
profiles = Table(
    "profiles",
    member,
    [TableFeature("country", "country", default="??"), TableFeature("age", "age", default=-1)],
)


def expected(records: list[dict[str, Any]], entity: str, at: int, field: str, default: Any):
    def entity_of(r: dict[str, Any]) -> Any:
        value = r["value"]
        return value["member_id"] if value and value.get("member_id") else r["key"]

    known = [r for r in records if entity_of(r) == entity and r["arrival"] <= at]
    if not known:
        return default
    latest = max(known, key=lambda r: (r["partition"], r["offset"]))
    if latest["value"] is None or latest["value"].get(field) is None:
        return default
    return latest["value"][field]


@st.composite
def table_records(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for partition in range(draw(st.integers(1, 3))):
        arrival = BASE + draw(st.integers(0, 10_000))
        for offset in range(draw(st.integers(0, 20))):
            arrival += draw(st.sampled_from([0, 1, 500, 60_000]))
            member = draw(st.sampled_from(MEMBERS))
            value = draw(
                st.one_of(
                    st.none(),  # a tombstone
                    st.fixed_dictionaries(
                        {
                            "country": st.one_of(st.none(), st.sampled_from(["fr", "de"])),
                            "age": st.one_of(st.none(), st.integers(0, 99)),
                        },
                        optional={"member_id": st.just(member)},  # else the log key says
                    ),
                )
            )
            out.append(
                {"partition": partition, "offset": offset, "arrival": arrival}
                | {"key": member, "value": value}
            )
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table_records(), st.data())
def test_table_features_are_the_latest_known_value(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    features = FeatureSet(tables=[profiles])
    near = [r["arrival"] + d for r in records for d in (-1, 0, 1)] or [BASE]
    instants = data.draw(st.lists(st.sampled_from(near), min_size=1, max_size=8))
    rows = [(m, at) for at in instants for m in [*MEMBERS, "nobody"]]
    spine = pa.table({"entity": [m for m, _ in rows], "at": [at for _, at in rows]})
    shuffled = data.draw(st.permutations(records))  # the table's row order does not matter
    out = build(features, {"profiles": events_table(features, "profiles", shuffled)}, spine)
    for row in out.to_pylist():
        for name, field, default in (("country", "country", "??"), ("age", "age", -1)):
            want = expected(records, row["entity"], row["at"], field, default)
            assert row[name] == want, (row, name, want)


def test_a_tombstone_hides_the_value_until_a_new_one_arrives() -> None:
    features = FeatureSet(tables=[profiles])
    records = [
        {"partition": 0, "offset": 0, "arrival": BASE, "value": {"member_id": "a", "age": 30}},
        {"partition": 0, "offset": 1, "arrival": BASE + 10, "key": "a", "value": None},
        {"partition": 0, "offset": 2, "arrival": BASE + 20, "value": {"member_id": "a", "age": 31}},
    ]
    spine = pa.table({"entity": ["a"] * 5, "at": [BASE - 1, BASE, BASE + 10, BASE + 19, BASE + 20]})
    out = build(features, {"profiles": events_table(features, "profiles", records)}, spine)
    assert out.column("age").to_pylist() == [-1, 30, -1, -1, 31]
    assert out.column("country").to_pylist() == ["??"] * 5


def test_one_topic_read_as_a_table_and_aggregated() -> None:
    """Aggregations skip tombstones; the table reads them."""
    orders = Aggregations(
        "profiles",
        member,
        [
            *Count.per_window("updates", windows=["lifetime"]),
            *Last.per_window("last_age", field="age"),
        ],
    )
    features = FeatureSet([orders], tables=[profiles])
    records = [
        {"partition": 0, "offset": 0, "arrival": BASE, "value": {"member_id": "a", "age": 30}},
        {"partition": 0, "offset": 1, "arrival": BASE + 10, "key": "a", "value": None},
    ]
    spine = pa.table({"entity": ["a", "a"], "at": [BASE + 5, BASE + 15]})
    out = build(features, {"profiles": events_table(features, "profiles", records)}, spine)
    assert out.select(["updates_lifetime", "last_age_lifetime", "age"]).to_pylist() == [
        {"updates_lifetime": 1, "last_age_lifetime": 30, "age": 30},
        {"updates_lifetime": 1, "last_age_lifetime": 30, "age": -1},
    ]


def test_a_table_keyed_by_another_field_of_an_aggregated_topic() -> None:
    """Orders aggregated per member and read as a table per order id share one topic."""
    order_entity = Entity("order", key="order_id")
    status = Table("orders", order_entity, [TableFeature("status", "status", default="none")])
    per_member = Aggregations("orders", member, Count.per_window("orders", windows=["lifetime"]))
    features = FeatureSet([per_member], tables=[status])
    records = [
        {"partition": 0, "offset": i, "arrival": BASE + i}
        | {"value": {"member_id": "a", "order_id": f"o{i % 2}", "status": s}}
        for i, s in enumerate(["new", "new", "paid"])
    ]
    source = {"orders": events_table(features, "orders", records)}
    spine = pa.table({"entity": ["o0", "o1", "o0"], "at": [BASE + 5, BASE + 5, BASE]})
    out = build(features, source, spine, entity="order")
    assert out.column("status").to_pylist() == ["paid", "new", "new"]
    spine = pa.table({"entity": ["a"], "at": [BASE + 5]})
    assert build(features, source, spine, entity="member").column("orders_lifetime")[0].as_py() == 3
