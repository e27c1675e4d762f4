"""Vectors of related entities: a member's features next to a candidate item's.

The features of a member (views aggregated per member, a profiles table) and
of an item (the same views aggregated per item, an items table) are read as
one vector, with derived features whose inputs span both. Online,
`OnlineFeatures.vector({"member": m, "item": i})`; offline,
`build(..., entities={"member": "member_id", "item": "item_id"})`. The
parity test feeds a generated stream to the online side in arrival order and
must find the offline rows equal to the vectors read (floats within 1e-9).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.streams import same
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
from loopline.features.offline.builder import build
from loopline.features.offline.events import BuildError, events_table
from loopline.features.online.vectors import OnlineFeatures

MINUTE = 60_000
BASE = 1_700_000_000_000 - (1_700_000_000_000 % 3_600_000)
VIEW_PARTITIONS = 3
MEMBERS = [f"m{i}" for i in range(5)]
ITEMS = [f"i{i}" for i in range(4)]
COUNTRIES = ["NO", "NL", "PT", None]

member, item = Entity("member", "member_id"), Entity("item", "item_id")
MEMBER_VIEWS = Aggregations(
    "views",
    member,
    [
        *Count.per_window("views", windows=["10m", "1h", "lifetime"]),
        *Sum.per_window("seconds", field="seconds", windows=["1h"]),
        *Last.per_window("last_item", field="item_id", windows=["lifetime"]),
    ],
    time="at",
    lateness="3m",
)
ITEM_VIEWS = Aggregations(  # the same topic, per item: records of an item span partitions
    "views",
    item,
    [
        *Count.per_window("item_views", windows=["1h", "24h"]),
        *Distinct.per_window("viewers", field="member_id", windows=["24h"]),
        *Mean.per_window("item_seconds", field="seconds", windows=["24h"]),
    ],
    time="at",
    lateness="3m",
)
PROFILES = Table(
    "profiles",
    member,
    [TableFeature("country", "country", default="??"), TableFeature("age", "age", default=-1)],
)
ITEM_TABLE = Table(
    "items",
    item,
    [
        TableFeature("item_country", "country", default="??"),
        TableFeature("price", "price", default=0.0),
    ],
)
# declared before what it reads; reads a cross-entity derived feature
LOCAL_POPULARITY = Derived(
    "local_popularity", ("same_country", "item_views_24h"), lambda same, n: n if same else 0
)
SAME_COUNTRY = Derived(
    "same_country", ("country", "item_country"), lambda a, b: a == b, default=False
)
SHARE = Derived(  # raises when the item had no views in the hour: takes its default
    "share_of_item_views", ("views_1h", "item_views_1h"), lambda a, b: a / b, default=0.0
)
RECENT = Derived("viewed_recently", ("views_10m",), lambda n: n > 0, default=False)
CHEAP = Derived("cheap", ("price",), lambda p: p < 10, default=False)
FEATURES = FeatureSet(
    [MEMBER_VIEWS, ITEM_VIEWS],
    tables=[PROFILES, ITEM_TABLE],
    derived=[LOCAL_POPULARITY, SAME_COUNTRY, SHARE, RECENT, CHEAP],
)
MEMBER_NAMES = [f.name for f in (*MEMBER_VIEWS.features, *PROFILES.features)] + ["viewed_recently"]
ITEM_NAMES = [f.name for f in (*ITEM_VIEWS.features, *ITEM_TABLE.features)] + ["cheap"]
ENTITIES = {"member": "member_id", "item": "item_id"}


@st.composite
def streams(draw, max_records: int = 100, max_reads: int = 25):
    """Views (keyed by member), profiles and items records in arrival order, and reads."""
    records = []
    clock = BASE
    offsets = {("views", p): 0 for p in range(VIEW_PARTITIONS)}
    offsets |= {("profiles", 0): 0, ("items", 0): 0}
    for _ in range(draw(st.integers(1, max_records))):
        clock += draw(st.integers(0, 4 * MINUTE))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            source, partition = "profiles", 0
            key = draw(st.sampled_from(MEMBERS))
            value = draw(
                st.none()
                | st.fixed_dictionaries(
                    {
                        "member_id": st.just(key),
                        "country": st.sampled_from(COUNTRIES),
                        "age": st.integers(18, 80),
                    }
                )
            )
        elif kind == 1:
            source, partition = "items", 0
            key = draw(st.sampled_from(ITEMS))
            value = draw(
                st.none()
                | st.fixed_dictionaries(
                    {
                        "item_id": st.just(key),
                        "country": st.sampled_from(COUNTRIES),
                        "price": st.none() | st.floats(0, 50, allow_nan=False),
                    }
                )
            )
        else:
            source = "views"
            key = draw(st.sampled_from(MEMBERS))
            partition = MEMBERS.index(key) % VIEW_PARTITIONS
            skew = draw(st.sampled_from([0, 0, 0, -MINUTE, -2 * MINUTE, -10 * MINUTE]))
            value = {
                "member_id": key,
                "item_id": draw(st.sampled_from(ITEMS)),
                "at": clock + skew - draw(st.integers(0, 999)),
                "seconds": draw(st.none() | st.floats(0, 600, allow_nan=False)),
            }
        records.append(
            {
                "source": source,
                "partition": partition,
                "offset": offsets[(source, partition)],
                "arrival": clock,
                "key": key,
                "value": value,
            }
        )
        offsets[(source, partition)] += 1
    reads = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(records) - 1),
                st.integers(0, 3 * MINUTE),
                st.sampled_from(MEMBERS),
                st.sampled_from([*ITEMS, "i404", None]),  # never seen, or no item at all
            ),
            min_size=1,
            max_size=max_reads,
        )
    )
    return records, reads


def sources_of(records: list[dict]) -> dict[str, pa.Table]:
    return {
        name: events_table(
            FEATURES,
            name,
            [
                {k: r[k] for k in ("partition", "offset", "arrival", "key", "value")}
                for r in records
                if r["source"] == name
            ],
        )
        for name in ("views", "profiles", "items")
    }


def mismatches(rows: list[dict], wanted: list[dict]) -> list[tuple]:
    return [
        (i, name, want[name], row[name])
        for i, (row, want) in enumerate(zip(rows, wanted, strict=True))
        for name in want
        if not same(want[name], row[name])
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_parity_related_entities_online_equals_offline(stream):
    records, reads = stream
    instants = sorted(
        ((records[i]["arrival"] + extra, m, it) for i, extra, m, it in reads),
        key=lambda read: read[0],
    )
    online = OnlineFeatures(FEATURES)
    related, members, items = [], [], []
    fed = 0
    for at, m, it in instants:
        while fed < len(records) and records[fed]["arrival"] <= at:
            r = records[fed]
            online.process(
                r["source"], r["partition"], r["offset"], r["arrival"], r["key"], r["value"]
            )
            fed += 1
        related.append(online.vector({"member": m, "item": it}, at=at))
        members.append(online.vector("member", m, at=at))
        # One call for many candidates reads each entity once, and gives the same vectors.
        batch = [{"member": m, "item": i} for i in [it, *ITEMS, None, it]]
        each = [online.vector(ids, at=at) for ids in batch]
        assert mismatches(online.vectors(batch, at=at), each) == []
        if it is not None:
            items.append(online.vector("item", it, at=at))

    sources = sources_of(records)
    spine = pa.table(
        {
            "member_id": [m for _, m, _ in instants],
            "item_id": pa.array([it for _, _, it in instants], pa.string()),
            "at": pa.array([at for at, _, _ in instants], pa.int64()),
        }
    )
    offline = build(FEATURES, sources, spine, entities=ENTITIES)
    assert offline.column_names == ["member_id", "item_id", "at", *FEATURES.names()]
    assert mismatches(offline.to_pylist(), related) == []

    # One entity's vector is its part of the related one, without what reads the other.
    for one, both in zip(members, related, strict=True):
        assert list(one) == MEMBER_NAMES
        assert mismatches([both], [one]) == []
    with_item = [v for v, (*_, it) in zip(related, instants, strict=True) if it is not None]
    for one, both in zip(items, with_item, strict=True):
        assert list(one) == ITEM_NAMES
        assert mismatches([both], [one]) == []

    # ... and the single-entity build still gives the single-entity vectors.
    alone = pa.table({"entity": spine.column("member_id"), "at": spine.column("at")})
    rows = build(FEATURES, sources, alone, entity="member")
    assert rows.column_names == ["entity", "at", *MEMBER_NAMES]
    assert mismatches(rows.to_pylist(), members) == []


T0 = BASE


def fed() -> OnlineFeatures:
    online = OnlineFeatures(FEATURES)
    online.process("profiles", 0, 0, T0, "m1", {"member_id": "m1", "country": "PT", "age": 40})
    online.process("items", 0, 0, T0, "i1", {"item_id": "i1", "country": "PT", "price": 5.0})
    online.process("items", 0, 1, T0, "i2", {"item_id": "i2", "country": "NL", "price": 50.0})
    for offset, (who, what) in enumerate([("m1", "i1"), ("m1", "i1"), ("m2", "i1"), ("m1", "i2")]):
        view = {"member_id": who, "item_id": what, "at": T0 + offset, "seconds": 10.0}
        online.process("views", 0, offset, T0 + offset, who, view)
    return online


def test_a_related_vector_holds_both_entities_features_and_what_spans_them() -> None:
    online = fed()
    assert online.vector({"member": "m1", "item": "i1"}, at=T0 + MINUTE) == {
        "views_10m": 3,
        "views_1h": 3,
        "views_lifetime": 3,
        "seconds_1h": 30.0,
        "last_item_lifetime": "i2",
        "item_views_1h": 3,
        "item_views_24h": 3,
        "viewers_24h": 2,
        "item_seconds_24h": 10.0,
        "country": "PT",
        "age": 40,
        "item_country": "PT",
        "price": 5.0,
        "local_popularity": 3,
        "same_country": True,
        "share_of_item_views": 1.0,
        "viewed_recently": True,
        "cheap": True,
    }
    # the order of the mapping does not matter; chosen names come in the order asked
    assert online.vector(
        {"item": "i2", "member": "m1"}, names=["local_popularity", "price"], at=T0 + MINUTE
    ) == {"local_popularity": 0, "price": 50.0}


def test_a_missing_related_entity_reads_as_defaults_online_and_offline() -> None:
    online = fed()
    at = T0 + MINUTE
    defaults = {
        "item_views_1h": 0,
        "item_views_24h": 0,
        "viewers_24h": 0,
        "item_seconds_24h": None,
        "item_country": "??",
        "price": 0.0,
        "local_popularity": 0,
        "same_country": False,
        "share_of_item_views": 0.0,  # 3 / 0 raised: its default
        "cheap": True,
    }
    for missing in ("i404", None):
        got = online.vector({"member": "m1", "item": missing}, at=at)
        assert {name: got[name] for name in defaults} == defaults
        assert got["views_1h"] == 3 and got["country"] == "PT"
    assert online.derived_errors == 2

    records = [
        {"partition": 0, "offset": 0, "arrival": T0, "key": "m1", "value": {"country": "PT"}}
    ]
    sources = sources_of([])
    sources["profiles"] = events_table(FEATURES, "profiles", records)
    spine = pa.table(
        {"member_id": ["m1", "m1"], "item_id": ["i404", None], "at": pa.array([at, at], pa.int64())}
    )
    rows = build(FEATURES, sources, spine, entities=ENTITIES).to_pylist()
    for row in rows:
        assert {name: row[name] for name in defaults} == defaults
        assert row["country"] == "PT" and row["views_1h"] == 0


def test_single_entity_vectors_are_as_before_and_say_what_needs_the_other_entity() -> None:
    online = fed()
    assert list(online.vector("member", "m1", at=T0 + MINUTE)) == MEMBER_NAMES
    assert online.vector("item", "i1", ["item_views_1h", "cheap"], T0 + MINUTE) == {
        "item_views_1h": 3,
        "cheap": True,
    }
    with pytest.raises(DeclarationError, match="'same_country' are not features of entity"):
        online.vector("member", "m1", ["same_country"], T0)
    with pytest.raises(
        DeclarationError,
        match=r"'local_popularity' reads features of entities member, item; "
        r"read it with vector\(\{'member': ID, 'item': ID\}\)",
    ):
        online.vector({"member": "m1"}, names=["local_popularity"], at=T0)
    with pytest.raises(DeclarationError, match="'price' is a feature of entity 'item'"):
        online.vector("member", "m1", ["price"], T0)
    with pytest.raises(DeclarationError, match="no feature named 'nope'"):
        online.vector({"member": "m1", "item": "i1"}, names=["nope"])
    with pytest.raises(DeclarationError, match="no features are declared for entity 'shop'"):
        online.vector({"member": "m1", "shop": "s1"})
    with pytest.raises(DeclarationError, match="at least one entity"):
        online.vector({})
    with pytest.raises(TypeError, match="give names= and at= by keyword"):
        online.vector({"member": "m1"}, ["views_1h"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs the id of the entity"):
        online.vector("member")


def test_build_refuses_a_spine_without_the_id_columns_or_two_ways_of_naming_them() -> None:
    spine = pa.table({"member_id": ["m1"], "at": pa.array([T0], pa.int64())})
    sources = sources_of([])
    with pytest.raises(BuildError, match=r"it lacks \['item_id'\]"):
        build(FEATURES, sources, spine, entities=ENTITIES)
    spine = spine.append_column("item_id", pa.array(["i1"]))
    with pytest.raises(BuildError, match=r"either entity= .* or entities="):
        build(FEATURES, sources, spine, entity="member", entities=ENTITIES)
    with pytest.raises(BuildError, match="no feature describes entity 'shop'"):
        build(FEATURES, sources, spine, entities={"shop": "member_id"})
    with pytest.raises(BuildError, match=r"spine columns \['price'\] have the names of features"):
        build(FEATURES, sources, spine.append_column("price", pa.array([1.0])), entities=ENTITIES)
    # one entity by `entities` is the single-entity build, its id column kept as it is
    one = build(FEATURES, sources, spine, entities={"member": "member_id"})
    assert one.column_names == ["member_id", "at", "item_id", *MEMBER_NAMES]
