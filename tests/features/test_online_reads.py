"""A `TileReader` reads what `EntityState.read`, the plain-Python reference, reads.

Random states (records in and out of order, some ahead of the clock and so
pending, states pruned, states merged from several partitions, dumped and
read back as an online store does, also as written before features shared
states) are read at random instants at or after
the state's clock, through the reader laid out from the state and from its
changelog entry, and must equal the reference.
"""

from __future__ import annotations

import gc
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.features import Aggregations, Entity
from loopline.features.aggregations import (
    Aggregation,
    Count,
    Distinct,
    Last,
    Max,
    Mean,
    Min,
    Sum,
)
from loopline.features.changelog import decode, encode
from loopline.features.online import EntityState, Plan, TileReader
from loopline.features.windows import Window

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000

GROUP = Aggregations(
    "views",
    Entity("member", "member_id"),
    [
        *Count.per_window("views", windows=["10m", "1h", "24h", "lifetime"]),
        *Count.per_window("long", windows=["1h"], where=lambda v: (v.get("x") or 0) > 30),
        *Sum.per_window("x_sum", field="x", windows=["10m", "24h", "lifetime"]),
        *Mean.per_window("x_mean", field="x", windows=["1h", "lifetime"]),
        *Min.per_window("x_min", field="x", windows=["1h", "lifetime"]),
        *Max.per_window("x_max", field="x", windows=["24h"]),
        *Min.per_window("tag_min", field="tag", windows=["1h"]),
        *Last.per_window("tag_last", field="tag", windows=["1h", "lifetime"]),
        *Distinct.per_window("tags", field="tag", windows=["1h", "lifetime"]),
    ],
)
PLAN = Plan(GROUP)

values = st.none() | st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.1, 1e16, -1e16])
values |= st.sampled_from([math.inf, -math.inf, -0.0, 3, 7])  # ints, infinities, signed zero
records = st.lists(
    st.tuples(
        st.integers(-3 * 60 * MINUTE, 3 * 60 * MINUTE),  # event time, around the arrival
        st.integers(0, 90 * MINUTE),  # arrival step
        values,
        st.none() | st.sampled_from(["feed", "jobs", "search", 5]),  # tags, one a number
    ),
    max_size=40,
)


def state_of(rows: list[tuple[int, int, object, object]], partition: int) -> EntityState:
    state = EntityState(PLAN)
    arrival = T0
    for offset, (skew, step, x, tag) in enumerate(rows):
        arrival += step
        state.add(arrival + skew, {"x": x, "tag": tag}, (partition, offset), clock=arrival)
    return state


def same(a: dict[str, object], b: dict[str, object]) -> bool:
    """Equal values, NaN equal to NaN (inf - inf in a sum)."""
    return a.keys() == b.keys() and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)
        for x, y in zip(a.values(), b.values(), strict=True)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(records, min_size=1, max_size=3),
    prune=st.booleans(),
    reads=st.lists(st.integers(-30 * MINUTE, 3 * 24 * 60 * MINUTE), min_size=1, max_size=8),
)
def test_a_reader_reads_what_the_reference_reads(
    parts: list[list[tuple[int, int, object, object]]], prune: bool, reads: list[int]
) -> None:
    states = [state_of(rows, p) for p, rows in enumerate(parts)]
    if prune:
        for s in states:
            s.prune()
    state = states[0] if len(states) == 1 else EntityState.merged(PLAN, states)
    clock = state.clock if state.clock is not None else T0
    dumped = decode(encode(state.dump()))  # as an online store reads a changelog entry
    # written before a sum and a mean over one window shared their states: both written out
    shared = [i for i, owner in enumerate(PLAN.owners) if owner != i]
    unshared = {**dumped, "tiles": [dumped["tiles"][owner] for owner in PLAN.owners]}
    assert shared and all(dumped["tiles"][i] is None for i in shared)
    readers = [TileReader(state), TileReader.from_dump(PLAN, dumped)]
    readers.append(TileReader.from_dump(PLAN, unshared))
    for delta in sorted(reads):  # reads come at or after the clock; some before pending records
        at = clock + delta if delta >= 0 else clock
        want = state.read(at)
        for reader in readers:
            got = reader.read(at)
            assert same(got, want), (at, got, want)
            assert list(got) == list(want)  # in declaration order
        assert same(readers[0].read(at), want)  # read again: from the reader's cache


def test_a_reader_laid_out_from_a_changelog_entry_keeps_nothing_per_tile_to_collect() -> None:
    """What an online store keeps after a first read, the cyclic collector walks on every
    middle pass until it reaches the oldest generation: a reader keeps a few objects per
    block and one list per feature, and nothing the collector tracks per tile (the decoded
    entry is dropped; a sum's tile states are tuples of numbers)."""
    windows = ["10m", "1h", "24h", "7d"]
    group = Aggregations(
        "views",
        Entity("member", "member_id"),
        [
            *Count.per_window("n", windows=windows),
            *Sum.per_window("x_sum", field="x", windows=windows),
            *Mean.per_window("x_mean", field="x", windows=windows),
            *Min.per_window("x_min", field="x", windows=windows),
            *Max.per_window("x_max", field="x", windows=windows),
        ],
    )
    plan = Plan(group)
    state = EntityState(plan)
    for i in range(12):  # 12 tiles of 10m, 1h and 24h apart: 140 tile states in all
        state.add(T0 + i * 7 * MINUTE, {"x": 1.5 * i}, (0, i), clock=T0 + 100 * MINUTE)
    reader = TileReader.from_dump(plan, decode(encode(state.dump())))
    assert reader.read(T0 + 101 * MINUTE) == state.read(T0 + 101 * MINUTE)
    gc.collect()  # a pass stops tracking tuples of numbers (those made before their
    gc.collect()  # inner tuple moved to an older generation: at the next one)
    seen: set[int] = set()
    stack: list[object] = [reader]
    tracked = 0
    while stack:  # the tracked objects only this reader holds (not the plan's features)
        o = stack.pop()
        if id(o) in seen or isinstance(o, Plan | Aggregation | Window | type) or callable(o):
            continue
        seen.add(id(o))
        if gc.is_tracked(o):
            tracked += 1
            stack.extend(gc.get_referents(o))
    assert len(reader.blocks) == len(windows)
    assert tracked <= 8 * len(reader.blocks) + len(group.features) + 2  # 54; 328 before
