"""Generated feature streams shared by the parity tests.

`feature_set(views, profiles)` declares aggregations of a views topic (three
partitions, every kind, windows from 10m to lifetime, a filter, a lateness of
3m), a table of a profiles topic (one partition), and a derived feature;
`streams(base)` draws records of both (out-of-order and late events, entities
that appear and go quiet, table updates and tombstones) and instants to read.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from loopline.features import Aggregations, Derived, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import (
    Count,
    Distinct,
    Last,
    Max,
    Mean,
    Min,
    MostFrequent,
    Sum,
)
from loopline.features.offline.builder import build
from loopline.features.offline.events import events_table

MINUTE = 60_000
BASE = 1_700_000_000_000 - (1_700_000_000_000 % 3_600_000)
VIEW_PARTITIONS = 3

member = Entity("member", key="member_id")


def feature_set(views: str = "views", profiles: str = "profiles") -> FeatureSet:
    """The declarations every parity test computes, over topics `views` and `profiles`."""
    return FeatureSet([_views(views)], tables=[_profiles(profiles)], derived=[PER_VIEW])


def _views(source: str) -> Aggregations:
    return Aggregations(
        source=source,
        entity=member,
        time="at",
        lateness="3m",
        features=[
            *Count.per_window("views", windows=["10m", "1h", "24h", "lifetime"]),
            *Count.per_window(
                "long_views", windows=["1h"], where=lambda v: (v.get("seconds") or 0) > 30
            ),
            *Sum.per_window("seconds", field="seconds", windows=["10m", "24h"]),
            *Mean.per_window("avg_seconds", field="seconds", windows=["1h", "lifetime"]),
            *Min.per_window("min_seconds", field="seconds", windows=["1h"]),
            *Max.per_window("max_seconds", field="seconds", windows=["24h"]),
            *Last.per_window("last_page", field="page", windows=["1h", "lifetime"]),
            *Distinct.per_window("pages", field="page", windows=["1h", "lifetime"]),
            *MostFrequent.per_window("top_page", field="page", windows=["1h", "lifetime"]),
            MostFrequent(
                "page", window="24h", name="top_long_page_24h", where=lambda v: v.get("seconds")
            ),
        ],
    )


def _profiles(source: str) -> Table:
    return Table(
        source=source,
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
FEATURES = feature_set()
ENTITIES = [f"m{i}" for i in range(6)]


@st.composite
def streams(draw, base: int = BASE, max_records: int = 120, max_reads: int = 25):
    """Records of both sources as the log holds them, in arrival order per partition."""
    records = []
    clock = base
    offsets = {("views", p): 0 for p in range(VIEW_PARTITIONS)} | {("profiles", 0): 0}
    for _ in range(draw(st.integers(1, max_records))):
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
            partition = ENTITIES.index(entity) % VIEW_PARTITIONS
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
            max_size=max_reads,
        )
    )
    return records, reads


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def offline_mismatches(
    features: FeatureSet,
    records: list[dict],
    instants: list[tuple[int, str]],
    online: list[dict],
    topic: dict[str, str] | None = None,
) -> list[tuple]:
    """Where the offline builder disagrees with `online`, the vectors read at `instants`.

    `records` are what `streams` drew; `topic` names the topics of the
    sources ``views`` and ``profiles`` (default: those names).
    """
    topic = topic or {"views": "views", "profiles": "profiles"}
    fields = ("partition", "offset", "arrival", "key", "value")
    sources = {
        topic[name]: events_table(
            features,
            topic[name],
            [{k: r[k] for k in fields} for r in records if r["source"] == name],
        )
        for name in ("views", "profiles")
    }
    spine = pa.table(
        {
            "entity": [entity for _, entity in instants],
            "at": pa.array([at for at, _ in instants], pa.int64()),
        }
    )
    offline = build(features, sources, spine).to_pylist()
    return [
        (row["entity"], row["at"], name, want[name], row[name])
        for row, want in zip(offline, online, strict=True)
        for name in features.names()
        if not same(want[name], row[name])
    ]


# -- building blocks of generated event streams (also used by the in-memory parity and
# reference tests) ----------------------------------------------------------------------

HOUR, DAY = 3_600_000, 86_400_000

# Time between two arrivals on a partition: bursts, minutes, hours, and tile-sized jumps.
gaps = st.one_of(
    st.just(0),
    st.integers(0, 2_000),
    st.integers(0, 15 * MINUTE),
    st.integers(0, 3 * HOUR),
    st.sampled_from([MINUTE, HOUR, DAY, DAY + 1]),
)
# Event time minus arrival: in order, late by minutes or more than a day, a little ahead.
skews = st.one_of(
    st.just(0),
    st.integers(-20 * MINUTE, 0),
    st.integers(-30 * HOUR, 0),
    st.integers(0, 2 * HOUR),
    st.sampled_from([-1, 1, -MINUTE, -HOUR, -DAY, MINUTE]),
)
# Field values: missing, small integers, wide floats, and values that cancel badly.
wide_values = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([1e16, -1e16, 0.1, 1e-9, 3.0, -0.0]),
)


def encode_time(ms: int, how: int) -> Any:
    """`ms` as epoch milliseconds, a datetime, or an ISO string (`how` 0, 1, 2)."""
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        milliseconds=ms
    )
    return [ms, moment, moment.isoformat(timespec="milliseconds")][how]
