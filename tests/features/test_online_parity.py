"""The online computation against the brute-force oracle of docs/decisions/0008.

Random streams over several partitions, with out-of-order, future-dated and
late events, None values and filters, are fed in log order (partitions
interleaved at random); at random instants T, after feeding every record with
arrival <= T, every feature of every entity must equal `reference.value_at`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import reference
from features.reference import NUMBER_KINDS, Event, aggregate, aggregates, value_at
from features.streams import encode_time, gaps, skews
from features.streams import wide_values as values
from loopline.features import Aggregations, Derived, Entity, FeatureSet, Window
from loopline.features.online import OnlineFeatures

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
BASE = 1_700_000_012_345  # not on any tile boundary
WINDOWS = ["10m", "1h", "24h", "lifetime"]
MEMBERS = ["a", "b", "c"]
TAGS = ["x", "y", "z"]
NO_VALUE = "no value"  # a default no aggregation can produce


def feature_set(lateness: int, tag_lateness: int) -> FeatureSet:
    member = Entity("member", key="member_id")
    clicks = Aggregations(
        "clicks", member, aggregates("", WINDOWS, NO_VALUE), time="at", lateness=lateness
    )
    by_tag = Aggregations(
        "clicks",
        Entity("tag", key="tag"),
        [aggregate(f"tag_{k}_1h", k, "v", Window.parse("1h")) for k in ("count", "sum", "last")],
        time="at",
        lateness=tag_lateness,
    )
    views = Aggregations(
        "views",
        member,
        [
            aggregate(f"views_{k}_{w}", k, "v", Window.parse(w))
            for k in NUMBER_KINDS
            for w in WINDOWS
        ],
    )
    per_click = Derived(
        "v_per_click", ("sum_1h", "count_1h"), lambda s, n: s / n, default="no clicks"
    )
    return FeatureSet([clicks, by_tag, views], derived=[per_click])


@st.composite
def streams(draw: st.DrawFn, max_per_partition: int = 25) -> list[Event]:
    """Events of one source, in offset order per partition, arrivals non-decreasing."""
    # On a grid, arrivals and event times fall on minutes, so they coincide with each
    # other and with tile edges: the boundaries where an off-by-one would show.
    grid = MINUTE if draw(st.booleans()) else 1
    members = draw(st.sampled_from([MEMBERS[:1], MEMBERS]))  # one: its records meet more often
    events = []
    for partition in range(draw(st.integers(1, 3))):
        arrival = BASE + draw(st.integers(0, 2 * HOUR))
        arrival -= arrival % grid
        for offset in range(draw(st.integers(0, max_per_partition))):
            arrival += draw(gaps) // grid * grid
            event_time = arrival + draw(skews) // grid * grid
            member = draw(st.sampled_from(members))
            fields = {
                "member_id": member,
                "at": encode_time(event_time, draw(st.integers(0, 2))),
                "v": draw(values),
                "tag": draw(st.one_of(st.none(), st.sampled_from(TAGS))),
            }
            events.append(Event(partition, offset, arrival, event_time, member, fields))
    return events


def instants(draw: st.DrawFn, events: list[Event]) -> list[int]:
    """Read instants: arbitrary ones, and ones on and next to event times and tile edges."""
    near = [e.event_time for e in events] + [e.arrival for e in events] + [BASE]
    picks = draw(
        st.lists(
            st.tuples(st.sampled_from(near), st.sampled_from([-1, 0, 1, 0, 0]), st.integers(0, 3)),
            max_size=8,
        )
    )
    out = []
    for t, nudge, snap in picks:
        t = [t, t - t % MINUTE, t - t % HOUR, t - t % MINUTE + 10 * MINUTE][snap] + nudge
        out.append(t)
    out += draw(st.lists(st.integers(BASE, BASE + 3 * DAY), max_size=3))
    return sorted(out)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b
    return type(a) is type(b) and a == b if isinstance(a, bool | str) else a == b


def expected_vector(fs: FeatureSet, sources: dict[str, list[Event]], member: str, at: int):
    expected: dict[str, Any] = {}
    for group in fs.aggregations:
        if group.entity.name != "member":
            continue
        for f in group.features:
            expected[f.name] = value_at(sources[group.source], group, f, member, at)
    s, n = expected["sum_1h"], expected["count_1h"]
    try:
        expected["v_per_click"] = s / n
    except Exception:
        expected["v_per_click"] = "no clicks"
    return expected


def by_tag_events(events: list[Event]) -> list[Event]:
    return [dataclasses.replace(e, entity=e.fields["tag"] or e.entity) for e in events]


def as_views(events: list[Event]) -> list[Event]:
    return [dataclasses.replace(e, event_time=e.arrival) for e in events]


@contextlib.contextmanager
def lateness_computed_once() -> Iterator[None]:
    """Memoise the oracle's `late_positions` (pure, and most of its time) per event list."""
    original = reference.late_positions
    cache: dict[tuple[int, int], set[tuple[int, int]]] = {}
    keep: list[list[Event]] = []  # so that no id is reused while the cache lives

    def late_positions(events: list[Event], lateness: int) -> set[tuple[int, int]]:
        key = (id(events), lateness)
        if key not in cache:
            keep.append(events)
            cache[key] = original(events, lateness)
        return cache[key]

    reference.late_positions = late_positions
    try:
        yield
    finally:
        reference.late_positions = original


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_online_vectors_equal_the_reference_at_every_instant(data: st.DataObject) -> None:
    events = data.draw(streams())
    lateness = data.draw(st.sampled_from([0, MINUTE, 5 * MINUTE, HOUR]))
    fs = feature_set(lateness, data.draw(st.sampled_from([0, 10 * MINUTE])))
    sources = {"clicks": events, "views": as_views(events)}
    tag_group, tag_events = fs.aggregations[1], by_tag_events(events)
    shuffle = data.draw(st.randoms(use_true_random=False))
    online = OnlineFeatures(fs)
    queues = {p: [e for e in events if e.partition == p] for p in {e.partition for e in events}}
    mismatches = []
    with lateness_computed_once():
        for at in instants(data.draw, events):
            feed(online, queues, at, shuffle)
            clock = online.clock if online.clock is not None else at
            # Reads need not come in order: any instant no earlier than the clock is exact.
            for t in (at, data.draw(st.integers(clock, max(clock, at)))):
                for member in [*MEMBERS, "nobody"]:
                    got = online.vector("member", member, at=t)
                    want = expected_vector(fs, sources, member, t)
                    mismatches += [
                        (t, member, k, got[k], v) for k, v in want.items() if not same(got[k], v)
                    ]
                for tag in [*TAGS, *MEMBERS]:
                    got = online.vector("tag", tag, at=t)
                    for f in tag_group.features:
                        want = value_at(tag_events, tag_group, f, tag, t)
                        if not same(got[f.name], want):
                            mismatches.append((t, tag, f.name, got[f.name], want))
            if data.draw(st.booleans()):
                online.prune(at)
            if data.draw(st.booleans()):
                online = OnlineFeatures.load(fs, json.loads(json.dumps(online.dump())))
    assert mismatches == []


def feed(
    online: OnlineFeatures, queues: dict[int, list[Event]], at: int, shuffle: random.Random
) -> None:
    """Process every queued record with arrival <= `at`, partitions interleaved at random."""
    while True:
        ready = [p for p, q in queues.items() if q and q[0].arrival <= at]
        if not ready:
            return
        e = queues[shuffle.choice(ready)].pop(0)
        late = online.process("clicks", e.partition, e.offset, e.arrival, e.entity, e.fields)
        assert isinstance(late, bool)
        online.process("views", e.partition, e.offset, e.arrival, e.entity, e.fields)
