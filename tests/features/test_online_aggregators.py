"""Every aggregator's algebra: however records are split into tiles and merged, the
result is that of the records taken together, and states survive JSON."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopline.features.aggregations import KINDS, Aggregation


def of(kind: str) -> Aggregation[Any]:
    """A feature of the built-in aggregation `kind`."""
    return KINDS[kind]() if kind == "count" else KINDS[kind]("v")


numbers = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.sampled_from([1e16, -1e16, 1.0, 0.1, 1e-300, -0.0]),
)
# (value, event_time, partition, offset) with unique positions.
records = st.lists(st.tuples(numbers, st.integers(0, 50), st.integers(0, 2)), max_size=40).map(
    lambda rows: [(v, t, p, o) for o, (v, t, p) in enumerate(rows)]
)


def direct(kind: str, rows: list[tuple[Any, int, int, int]]) -> Any:
    """What 0008 says the records give, computed the obvious way."""
    values = [v for v, *_ in rows]
    if not rows:
        return None
    return {
        "count": lambda: len(rows),
        "sum": lambda: math.fsum(values),
        "mean": lambda: math.fsum(values) / len(values),
        "min": lambda: min(values),
        "max": lambda: max(values),
        "last": lambda: max(rows, key=lambda r: (r[1], r[2], r[3]))[0],
        "distinct": lambda: len(set(values)),
        "most_frequent": lambda: sorted(set(values), key=lambda v: (-values.count(v), v))[0],
    }[kind]()


CATEGORIES = ("ann", "bob", "cy", "\u00e9", "z")  # "z" < "\u00e9" by code point


def typed(kind: str, rows: list[tuple[Any, int, int, int]]) -> list[tuple[Any, int, int, int]]:
    """`rows` with values the kind reads: strings from a few categories for most_frequent
    (so that counts tie and differ), the numbers as drawn for the others."""
    if kind != "most_frequent":
        return rows
    return [(CATEGORIES[int(abs(v)) % len(CATEGORIES)], t, p, o) for v, t, p, o in rows]


def fold(agg: Aggregation[Any], rows: list[tuple[Any, int, int, int]]) -> Any:
    state = agg.empty()
    for value, event_time, partition, offset in rows:
        state = agg.add(state, value, event_time, (partition, offset))
    return state


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


@pytest.mark.parametrize("kind", KINDS)
@given(rows=records, seed=st.integers(0, 2**32))
def test_tiles_merged_in_any_order_give_the_result_of_all_records(
    kind: str, rows: list[tuple[Any, int, int, int]], seed: int
) -> None:
    agg, rows = of(kind), typed(kind, rows)
    rng = random.Random(seed)
    tiles: list[list[tuple[Any, int, int, int]]] = [[] for _ in range(rng.randint(1, 6))]
    for row in rows:
        rng.choice(tiles).append(row)
    rng.shuffle(tiles)
    merged = agg.empty()
    for tile in tiles:
        merged = agg.merge(merged, fold(agg, tile))
    expected = direct(kind, rows)
    assert close(agg.result(merged), expected)
    assert close(agg.result(fold(agg, rows)), expected)


@pytest.mark.parametrize("kind", KINDS)
@given(rows=records)
def test_a_state_read_back_from_json_gives_the_same_result_and_keeps_growing(
    kind: str, rows: list[tuple[Any, int, int, int]]
) -> None:
    agg, rows = of(kind), typed(kind, rows)
    half = len(rows) // 2
    state = agg.load(json.loads(json.dumps(agg.dump(fold(agg, rows[:half])))))
    for value, event_time, partition, offset in rows[half:]:
        state = agg.add(state, value, event_time, (partition, offset))
    assert close(agg.result(state), direct(kind, rows))


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_state_has_no_value(kind: str) -> None:
    agg = of(kind)
    assert agg.result(agg.empty()) is None
    assert agg.result(agg.merge(agg.empty(), agg.empty())) is None


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
        max_size=60,
    ),
    st.integers(0, 2**32),
)
def test_sum_and_mean_are_fsum_exact_where_a_float_sum_is_not(
    values: list[float], seed: int
) -> None:
    rng = random.Random(seed)
    rows = [(v, 0, 0, i) for i, v in enumerate(values)]
    parts = [rows[i : i + 3] for i in range(0, len(rows), 3)]
    rng.shuffle(parts)
    for kind in ("sum", "mean"):
        agg = of(kind)
        state = agg.empty()
        for part in parts:
            state = agg.merge(state, fold(agg, part))
        assert agg.result(state) == direct(kind, rows)  # exactly, not just within 1e-9


def test_cancellation_that_defeats_a_float_sum_does_not_defeat_sum() -> None:
    values = [1e16, 1.0, -1e16, 3.0, 1e-3, -1e-3]
    assert sum(values) != math.fsum(values)
    agg = of("sum")
    one_per_tile = [fold(agg, [(v, 0, 0, i)]) for i, v in enumerate(values)]
    state = agg.empty()
    for tile in one_per_tile:
        state = agg.merge(state, tile)
    assert agg.result(state) == math.fsum(values) == 4.0


def test_sum_of_infinities_follows_float_arithmetic() -> None:
    agg = of("sum")
    assert agg.result(fold(agg, [(math.inf, 0, 0, 0), (1.0, 0, 0, 1)])) == math.inf
    assert math.isnan(agg.result(fold(agg, [(math.inf, 0, 0, 0), (-math.inf, 0, 0, 1)])))


def test_last_breaks_event_time_ties_by_the_later_position() -> None:
    agg = of("last")
    rows = [("p1", 5, 1, 0), ("p0-late-offset", 5, 0, 9), ("earlier", 4, 2, 0)]
    assert agg.result(fold(agg, rows)) == "p1"
    assert agg.result(fold(agg, rows[::-1])) == "p1"
