"""A `TileReader` reads what `EntityState.read`, the plain-Python reference, reads.

Random states (records in and out of order, some ahead of the clock and so
pending, states pruned, states merged from several partitions, dumped and
read back as an online store does) are read at random instants at or after
the state's clock, through the reader laid out from the state and from its
changelog entry, and must equal the reference.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.features import Aggregations, Entity
from loopline.features.aggregations import Count, Distinct, Last, Max, Mean, Min, Sum
from loopline.features.changelog import decode, encode
from loopline.features.online import EntityState, Plan, TileReader

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
    readers = [TileReader(state), TileReader.from_dump(PLAN, dumped)]
    for delta in sorted(reads):  # reads come at or after the clock; some before pending records
        at = clock + delta if delta >= 0 else clock
        want = state.read(at)
        for reader in readers:
            got = reader.read(at)
            assert same(got, want), (at, got, want)
            assert list(got) == list(want)  # in declaration order
        assert same(readers[0].read(at), want)  # read again: from the reader's cache
