"""Parity: the online computation and the offline builder give the same vectors.

One generated stream per example (several partitions, out-of-order and late
events, entities that appear and go quiet, table updates and tombstones) is
fed to `OnlineFeatures` in arrival order; at random instants T the online
vector of random entities is read after every record with arrival <= T was
processed. The offline builder then builds the same (entity, T) rows from the
whole stream. Zero mismatches are allowed (floats within 1e-9).

(The same check over the real log, through the stream processor, comes with
the processor; this one pins the two computations to each other.)
"""

from __future__ import annotations

import math

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.features import Aggregations, Derived, Entity, FeatureSet, Table, TableFeature
from loopline.features.declarations import count, distinct, last, max, mean, min, sum
from loopline.features.offline.builder import build
from loopline.features.offline.events import events_table
from loopline.features.online.vectors import OnlineFeatures

MINUTE = 60_000
BASE = 1_700_000_000_000 - (1_700_000_000_000 % 3_600_000)

member = Entity("member", key="member_id")
VIEWS = Aggregations(
    source="views",
    entity=member,
    time="at",
    lateness="3m",
    features=[
        *count("views", windows=["10m", "1h", "24h", "lifetime"]),
        *count("long_views", windows=["1h"], where=lambda v: (v.get("seconds") or 0) > 30),
        *sum("seconds", field="seconds", windows=["10m", "24h"]),
        *mean("avg_seconds", field="seconds", windows=["1h", "lifetime"]),
        *min("min_seconds", field="seconds", windows=["1h"]),
        *max("max_seconds", field="seconds", windows=["24h"]),
        *last("last_page", field="page", windows=["1h", "lifetime"]),
        *distinct("pages", field="page", windows=["1h", "lifetime"]),
    ],
)
PROFILES = Table(
    source="profiles",
    entity=member,
    features=[
        TableFeature("country", field="country", default="??"),
        TableFeature("age", field="age", default=-1),
    ],
)
PER_VIEW = Derived(
    "seconds_per_view",
    inputs=("seconds_24h", "views_24h"),
    fn=lambda seconds, views: seconds / views,
    default=0.0,
)
FEATURES = FeatureSet([VIEWS], tables=[PROFILES], derived=[PER_VIEW])
ENTITIES = [f"m{i}" for i in range(6)]


@st.composite
def streams(draw):
    """Records of both sources as the log holds them, in arrival order per partition."""
    records = []
    clock = BASE
    offsets = {("views", p): 0 for p in range(3)} | {("profiles", 0): 0}
    for _ in range(draw(st.integers(1, 120))):
        clock += draw(st.integers(0, 4 * MINUTE))
        if draw(st.integers(0, 9)) == 0:
            source, partition = "profiles", 0
            entity = draw(st.sampled_from(ENTITIES))
            tombstone = draw(st.integers(0, 5)) == 0
            value = (
                None
                if tombstone
                else {
                    "member_id": entity,
                    "country": draw(st.sampled_from(["NO", "NL", "DE", None])),
                    "age": draw(st.integers(18, 80)),
                }
            )
        else:
            source = "views"
            # an entity's records share a partition, as keyed records do
            entity = draw(st.sampled_from(ENTITIES))
            partition = ENTITIES.index(entity) % 3
            # mostly on time, sometimes out of order, sometimes far behind (late)
            skew = draw(
                st.sampled_from([0, 0, 0, -MINUTE, -2 * MINUTE, -10 * MINUTE, -90 * MINUTE])
            )
            value = {
                "member_id": entity,
                "at": clock + skew - draw(st.integers(0, 999)),
                "seconds": draw(st.none() | st.floats(0, 600, allow_nan=False)),
                "page": draw(st.none() | st.sampled_from(["feed", "jobs", "profile", "search"])),
            }
        key = (source, partition)
        records.append(
            {
                "source": source,
                "partition": partition,
                "offset": offsets[key],
                "arrival": clock,
                "key": entity,
                "value": value,
            }
        )
        offsets[key] += 1
    reads = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(records) - 1),
                st.integers(0, 3 * MINUTE),
                st.sampled_from(ENTITIES),
            ),
            min_size=1,
            max_size=25,
        )
    )
    return records, reads


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_parity_online_equals_offline(stream):
    records, reads = stream
    # instants: just after some record arrived (plus a little), in time order
    instants = sorted((records[i]["arrival"] + extra, entity) for i, extra, entity in reads)
    online = OnlineFeatures(FEATURES)
    expected = []
    fed = 0
    for at, entity in instants:
        while fed < len(records) and records[fed]["arrival"] <= at:
            r = records[fed]
            online.process(
                r["source"], r["partition"], r["offset"], r["arrival"], r["key"], r["value"]
            )
            fed += 1
        expected.append(online.vector("member", entity, at=at))

    sources = {
        name: events_table(
            FEATURES,
            name,
            [
                {
                    "partition": r["partition"],
                    "offset": r["offset"],
                    "arrival": r["arrival"],
                    "key": r["key"],
                    "value": r["value"],
                }
                for r in records
                if r["source"] == name
            ],
        )
        for name in ("views", "profiles")
    }
    spine = pa.table(
        {
            "entity": [entity for _, entity in instants],
            "at": pa.array([at for at, _ in instants], pa.int64()),
        }
    )
    offline = build(FEATURES, sources, spine).to_pylist()

    mismatches = [
        (row["entity"], row["at"], name, want[name], row[name])
        for row, want in zip(offline, expected, strict=True)
        for name in FEATURES.names()
        if not same(want[name], row[name])
    ]
    assert mismatches == []
