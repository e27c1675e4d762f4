"""One entity's tiles: the edges of a window, time passing, pruning and changelog round trips."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.features import Aggregations, Entity
from loopline.features.aggregations import Count, Distinct, Last, Mean, Sum
from loopline.features.online import EntityState, Plan
from loopline.features.online.state import PRUNE_AFTER
from loopline.features.online.times import event_time_ms

MINUTE, HOUR = 60_000, 3_600_000
T0 = event_time_ms("2024-05-01T10:00:00Z")
GROUP = Aggregations(
    "clicks",
    Entity("member", "member_id"),
    [
        *Count.per_window("clicks", windows=["10m", "1h", "24h", "lifetime"]),
        *Sum.per_window("spent", field="amount", windows=["1h", "7d"]),
        *Mean.per_window("avg", field="amount", windows=["24h"]),
        *Distinct.per_window("pages", field="page", windows=["30d"]),
        *Last.per_window("page", field="page", windows=["1h", "lifetime"]),
    ],
    time="at",
)


def click(amount: float = 1.0, page: str = "home") -> dict[str, object]:
    return {"member_id": "m", "amount": amount, "page": page}


def test_a_window_ending_at_t_never_sees_an_event_at_or_after_t() -> None:
    state = EntityState(Plan(GROUP))
    half_past = T0 + 30 * MINUTE  # inside the 24h window's current (hourly) tile
    state.add(half_past, click(), (0, 0), clock=T0)  # arrived at 10:00, happened at 10:30
    assert state.read(half_past - 1)["clicks_24h"] == 0
    # Another click of the entity arrives exactly at 10:30: the first one must stay out
    # of reads at 10:30 although its tile has started.
    state.add(T0, click(), (0, 1), clock=half_past)
    assert state.read(half_past)["clicks_24h"] == 1
    assert state.read(half_past)["clicks_lifetime"] == 1
    assert state.read(half_past + 1)["clicks_24h"] == 2
    assert state.read(half_past + 1)["clicks_10m"] == 1  # 10:00 is more than 10 tiles back


def test_a_one_hour_count_falls_as_time_passes_without_new_events() -> None:
    state = EntityState(Plan(GROUP))
    for i in range(6):  # one click every 10 minutes from 10:00
        state.add(T0 + i * 10 * MINUTE, click(), (0, i), clock=T0 + i * 10 * MINUTE)
    last_click = T0 + 50 * MINUTE
    counts = [state.read(last_click + m * MINUTE + 1)["clicks_1h"] for m in range(0, 70, 10)]
    assert counts == [6, 5, 4, 3, 2, 1, 0]
    assert state.read(last_click + 2 * HOUR)["clicks_lifetime"] == 6


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20 * MINUTE), st.integers(-2 * HOUR, 30 * MINUTE)),
        min_size=1,
        max_size=300,
    )
)
def test_pruning_keeps_at_most_a_ring_of_tiles_per_window(steps: list[tuple[int, int]]) -> None:
    state = EntityState(Plan(GROUP))
    clock = T0
    for offset, (gap, skew) in enumerate(steps):
        clock += gap
        state.add(clock + skew, click(page=str(offset % 7)), (0, offset), clock=clock)
        for slot, tiles in zip(state.plan.slots, state.tiles, strict=True):
            window = slot.window
            if window.length is not None and window.tile is not None:
                # pruning runs every PRUNE_AFTER records: at most that many tiles more
                assert len(tiles) <= window.length // window.tile + PRUNE_AFTER, slot.name
            else:
                assert len(tiles) <= 1
    state.prune()
    for slot, tiles in zip(state.plan.slots, state.tiles, strict=True):
        window = slot.window
        if window.length is not None and window.tile is not None:
            assert len(tiles) <= window.length // window.tile, slot.name
    state.advance(clock + 31 * 24 * HOUR)
    state.prune()
    assert [len(t) for t in state.tiles] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert not state.is_empty()


# Clicks as (gap since the last arrival, event time - arrival, amount, page), and later reads.
CLICKS = st.lists(
    st.tuples(
        st.integers(0, 20 * MINUTE),
        st.integers(-2 * HOUR, 30 * MINUTE),
        st.floats(-1e9, 1e9),
        st.sampled_from(["home", "cart", "pay"]),
    ),
    max_size=60,
)
LATER = st.lists(st.integers(0, 3 * HOUR), min_size=1, max_size=5)


@settings(max_examples=50, deadline=None)
@given(CLICKS, LATER)
def test_a_state_read_back_from_its_changelog_reads_the_same(
    steps: list[tuple[int, int, float, str]], later: list[int]
) -> None:
    state = EntityState(Plan(GROUP))
    clock = T0
    for offset, (gap, skew, amount, page) in enumerate(steps):
        clock += gap
        state.add(clock + skew, click(amount, page), (0, offset), clock=clock)
    copy = EntityState.load(state.plan, json.loads(json.dumps(state.dump())))
    for t in later:
        assert copy.read(clock + t) == state.read(clock + t)
    copy.add(clock, click(), (0, len(steps)), clock=clock + 1)
    state.add(clock, click(), (0, len(steps)), clock=clock + 1)
    assert copy.read(clock + 1) == state.read(clock + 1)


def test_a_filter_that_raises_leaves_the_record_out_and_is_counted() -> None:
    group = Aggregations(
        "clicks",
        Entity("member", "member_id"),
        Count.per_window("big", windows=["lifetime"], where=lambda f: f["amount"] > 10),
    )
    plan = Plan(group)
    state = EntityState(plan)
    state.add(T0, {"amount": 20}, (0, 0), clock=T0)
    state.add(T0, {"amount": None}, (0, 1), clock=T0)  # None > 10 raises TypeError
    assert state.read(T0 + 1) == {"big_lifetime": 1}
    assert plan.filter_errors == 1


BIG = lambda f: f["amount"] > 10  # noqa: E731  one filter, shared by two features below
SHARING = Aggregations(
    "clicks",
    Entity("member", "member_id"),
    [
        *Sum.per_window("spent", field="amount", windows=["1h", "24h"]),
        *Mean.per_window("avg", field="amount", windows=["1h", "7d"]),
        Sum("amount", window="24h", name="big_spent", where=BIG),
        Mean("amount", window="24h", name="big_avg", where=BIG),
        Mean("amount", window="24h", name="other_filter", where=lambda f: f["amount"] > 10),
        *Count.per_window("clicks", windows=["1h"]),
    ],
    time="at",
)


def test_a_sum_and_a_mean_of_one_field_and_window_keep_one_state() -> None:
    plan = Plan(SHARING)
    # spent_1h/avg_1h share, big_spent/big_avg share; other windows and filters do not
    assert plan.owners == (0, 1, 0, 3, 4, 4, 6, 7)
    state = EntityState(plan)
    for offset, amount in enumerate([5.0, 20.0, 30.0]):
        state.add(T0 + offset * MINUTE, click(amount), (0, offset), clock=T0 + 10 * MINUTE)
    assert state.tiles[2] is state.tiles[0] and state.tiles[5] is state.tiles[4]
    dumped = state.dump()
    assert [i for i, tiles in enumerate(dumped["tiles"]) if tiles is None] == [2, 5]
    assert state.read(T0 + 11 * MINUTE) == {
        "spent_1h": 55.0,
        "spent_24h": 55.0,
        "avg_1h": 55.0 / 3,
        "avg_7d": 55.0 / 3,
        "big_spent": 50.0,
        "big_avg": 25.0,
        "other_filter": 25.0,
        "clicks_1h": 3,
    }


@settings(max_examples=50, deadline=None)
@given(CLICKS, LATER, st.booleans())
def test_shared_states_read_what_each_feature_alone_reads(
    steps: list[tuple[int, int, float, str]], later: list[int], prune: bool
) -> None:
    """Each feature of the sharing group, kept alone in a group of its own, reads the same;
    so does the state read back from its changelog, and from a changelog entry written
    before states were shared (every feature's tiles written out)."""
    plan = Plan(SHARING)
    alone = [
        EntityState(Plan(Aggregations("clicks", SHARING.entity, [f], time="at")))
        for f in SHARING.features
    ]
    state = EntityState(plan)
    clock = T0
    for offset, (gap, skew, amount, page) in enumerate(steps):
        clock += gap
        for s in (state, *alone):
            s.add(clock + skew, click(amount, page), (0, offset), clock=clock)
    if prune:
        for s in (state, *alone):
            s.prune()
    unshared = state.dump()
    unshared["tiles"] = [a.dump()["tiles"][0] for a in alone]
    copies = [EntityState.load(plan, json.loads(json.dumps(d))) for d in (state.dump(), unshared)]
    for t in later:
        want = {k: v for a in alone for k, v in a.read(clock + t).items()}
        assert state.read(clock + t) == want
        for copy in copies:
            assert copy.read(clock + t) == want
    for copy in copies:  # a loaded state adds a record to a shared map once
        copy.add(clock, click(2.0), (0, len(steps)), clock=clock + 1)
        assert copy.tiles[2] is copy.tiles[0]
    state.add(clock, click(2.0), (0, len(steps)), clock=clock + 1)
    for copy in copies:
        assert copy.read(clock + 1) == state.read(clock + 1)
