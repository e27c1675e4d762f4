"""Properties of the offline builder a user relies on without reading the oracle.

Nothing at or after T, and nothing arriving after T, changes a value at T;
sums are exactly `math.fsum`; the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import math
import random
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.reference import Event
from features.test_offline_reference import BASE, DAY, MEMBERS, feature_set, records, streams
from features.test_offline_reference import wide_values as values
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Mean, Sum
from loopline.features.offline import build, events_table

HOUR = 3_600_000
# Each example builds twice (DuckDB, about 0.2 s a build): 24 examples each (40 until the
# suite had to fit its time). Their streams come from the strategy test_offline_reference.py
# checks against the oracle at every instant of 78 examples; these two check the properties
# without trusting the oracle.
slow = settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def built(fs: FeatureSet, events: list[Event], spine: pa.Table) -> pa.Table:
    sources = {topic: events_table(fs, topic, records(events)) for topic in ("clicks", "views")}
    return build(fs, sources, spine, entity="member")


def appended(
    events: list[Event], extra: list[tuple[int, int, int, Any]], earliest: int
) -> list[Event]:
    """`events` and more at the end of partitions: (partition, arrival step, event time, v),
    arriving at `earliest` or later."""
    out = list(events)
    for partition, arrival_step, event_time, v in extra:
        mine = [e for e in out if e.partition == partition]
        arrival = max([e.arrival for e in mine] + [earliest]) + arrival_step
        offset = len(mine)
        fields = {"member_id": "a", "at": event_time, "v": v, "tag": "y"}
        out.append(Event(partition, offset, arrival, event_time, "a", fields))
    return out


def spine_at(at: int) -> pa.Table:
    return pa.table({"entity": [*MEMBERS, "nobody"], "at": [at] * 4})


@slow
@given(streams(values), st.integers(BASE, BASE + 2 * DAY), st.data())
def test_events_at_or_after_the_instant_never_count(events: list[Event], at: int, data) -> None:
    fs = feature_set(data.draw(st.sampled_from([0, HOUR])), 0, None)
    future = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 3),
                st.integers(0, HOUR),
                st.integers(at, at + DAY),  # event time at or after the instant
                values,
            ),
            min_size=1,
            max_size=5,
        )
    )
    before = built(fs, events, spine_at(at))
    # Arriving at the instant or later too: the views group's event time is the arrival.
    after = built(fs, appended(events, future, at), spine_at(at))
    assert after.to_pylist() == before.to_pylist()


@slow
@given(streams(values), st.integers(BASE, BASE + 2 * DAY), st.data())
def test_events_arriving_after_the_instant_never_count(events: list[Event], at: int, data) -> None:
    fs = feature_set(data.draw(st.sampled_from([0, HOUR])), 0, None)
    late = data.draw(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, HOUR), st.integers(at - DAY, at), values),
            min_size=1,
            max_size=5,
        )
    )
    before = built(fs, events, spine_at(at))  # values: a column's type follows the data
    later = appended(events, late, at + 1)
    assert built(fs, later, spine_at(at)).to_pylist() == before.to_pylist()


floats = st.floats(-1e300, 1e300, allow_nan=False)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(floats, st.integers(-(2**60), 2**60)), min_size=1, max_size=30))
def test_sums_are_exactly_fsum(numbers: list[float]) -> None:
    numbers = [float(n) for n in numbers]
    group = Aggregations(
        "pay",
        Entity("member", "member_id"),
        [
            *Sum.per_window("paid", field="v", windows=["lifetime", "24h"]),
            *Mean.per_window("avg", field="v", windows=["lifetime", "1h"]),
        ],
    )
    fs = FeatureSet([group])
    rows = [
        {"partition": 0, "offset": i, "arrival": BASE + i, "value": {"member_id": "a", "v": v}}
        for i, v in enumerate(numbers)
    ]
    spine = pa.table({"entity": ["a"], "at": [BASE + len(numbers) + 1]})
    out = build(fs, {"pay": events_table(fs, "pay", rows)}, spine).to_pylist()[0]
    want = math.fsum(numbers)
    assert out["paid_lifetime"] == want and out["paid_24h"] == want
    assert out["avg_lifetime"] == want / len(numbers) == out["avg_1h"]


def _bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_the_same_inputs_give_the_same_bytes() -> None:
    """Large enough for DuckDB to aggregate on several threads; sums included."""
    rng = random.Random(5)
    fs = feature_set(HOUR, 0, "no value")
    events, arrival = [], BASE
    for offset in range(60_000):
        arrival += rng.choice([0, 10, 1_000, 30_000])
        member = f"m{rng.randrange(3_000)}"
        v = rng.choice([None, rng.uniform(-1e6, 1e6), rng.randrange(100), 1e16, 1e-9])
        fields = {"member_id": member, "at": arrival - rng.choice([0, 5_000, 2 * HOUR]), "v": v}
        fields["tag"] = rng.choice([None, "x", "y", "z"])
        events.append(Event(offset % 3, offset // 3, arrival, fields["at"], member, fields))
    spine = pa.table(
        {
            "entity": [f"m{rng.randrange(3_000)}" for _ in range(20_000)],
            "at": [rng.randrange(BASE, arrival + HOUR) for _ in range(20_000)],
        }
    )
    first = _bytes(built(fs, events, spine))
    rng.shuffle(events)  # the sources' row order is not an input
    assert _bytes(built(fs, events, spine)) == first
