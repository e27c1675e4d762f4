"""Table features online: the latest record by position of each entity, tombstones remove."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.features.online import OnlineFeatures

member = Entity("member", key="member_id")
PROFILES = Table(
    "profiles",
    member,
    [TableFeature("country", "country", default="??"), TableFeature("age", "age", default=-1)],
)
FEATURES = FeatureSet(tables=[PROFILES])
MEMBERS = ["m1", "m2", "m3"]


@st.composite
def table_logs(draw: st.DrawFn) -> list[tuple[int, int, int, str, dict[str, Any] | None]]:
    """(partition, offset, arrival, key, fields or None) with arrivals rising per partition."""
    records = []
    for partition in range(draw(st.integers(1, 2))):
        arrival = draw(st.integers(0, 100))
        for offset in range(draw(st.integers(0, 20))):
            arrival += draw(st.integers(0, 50))
            key = draw(st.sampled_from(MEMBERS))
            fields = draw(
                st.one_of(
                    st.none(),
                    st.fixed_dictionaries(
                        {"member_id": st.just(key)},
                        optional={
                            "country": st.one_of(st.none(), st.sampled_from(["PT", "FR"])),
                            "age": st.integers(18, 99),
                        },
                    ),
                )
            )
            records.append((partition, offset, arrival, key, fields))
    return records


def oracle(records: list[Any], key: str, at: int) -> dict[str, Any]:
    known = [r for r in records if r[3] == key and r[2] <= at]
    if not known:
        return {"country": "??", "age": -1}
    fields = max(known, key=lambda r: (r[0], r[1]))[4]
    if fields is None:
        return {"country": "??", "age": -1}
    country, age = fields.get("country"), fields.get("age")
    return {"country": "??" if country is None else country, "age": -1 if age is None else age}


@given(table_logs(), st.lists(st.integers(0, 1_200), max_size=6), st.randoms())
def test_table_features_are_the_latest_known_record_by_position(
    records: list[Any], instants: list[int], rng: random.Random
) -> None:
    online = OnlineFeatures(FEATURES)
    queues = {p: [r for r in records if r[0] == p] for p in {r[0] for r in records}}
    for at in sorted(instants):
        while ready := [p for p, q in queues.items() if q and q[0][2] <= at]:
            partition, offset, arrival, key, fields = queues[rng.choice(ready)].pop(0)
            online.process("profiles", partition, offset, arrival, key, fields)
        for key in MEMBERS:
            assert online.vector("member", key, at=at) == oracle(records, key, at)
        online = OnlineFeatures.load(FEATURES, json.loads(json.dumps(online.dump())))


def test_a_tombstone_removes_and_an_older_record_does_not_bring_the_entity_back() -> None:
    online = OnlineFeatures(FEATURES)
    online.process("profiles", 1, 0, 10, "m1", {"member_id": "m1", "country": "PT", "age": 40})
    assert online.vector("member", "m1") == {"country": "PT", "age": 40}
    online.process("profiles", 1, 1, 11, "m1", None)
    assert online.vector("member", "m1") == {"country": "??", "age": -1}
    online.process("profiles", 0, 5, 12, "m1", {"member_id": "m1", "country": "FR"})
    assert online.vector("member", "m1") == {"country": "??", "age": -1}
    online.process("profiles", 1, 2, 13, "m1", {"member_id": "m1", "country": "FR"})
    assert online.vector("member", "m1") == {"country": "FR", "age": -1}
