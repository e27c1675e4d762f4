"""Adding an aggregation kind is one class: `Spread` below, declared here and nowhere else.

The recipe (docs/architecture.md, "how to add an aggregation"): subclass
`Aggregation`, give it a `kind`, the value `types` it reads, the four online
operations and its offline `sql`. The online processor, the changelog, the
offline builder, the dead letters and the fingerprint then take it as they
take the built-in kinds, and the parity check of the built-in kinds holds
for it unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from features.streams import PER_VIEW, _profiles, _views, offline_mismatches, streams
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import NUMBERS, Aggregation, Position, filtered
from loopline.features.offline import build, events_table
from loopline.features.online import OnlineFeatures, UnreadableRecord

SpreadState = list[Any] | None  # [smallest, largest] so far


class Spread(Aggregation[SpreadState]):
    """Largest minus smallest value of a number field in the window.

    >>> spread = Spread("seconds", window="1h")
    >>> state = spread.empty()
    >>> for x in [3.0, 10.5, 7.0]:
    ...     state = spread.add(state, x, 0, (0, 0))
    >>> spread.result(state)
    7.5
    """

    kind = "spread"
    types = NUMBERS
    accepts = "a number (int or float)"

    def empty(self) -> SpreadState:
        return None

    def add(self, state: SpreadState, value: Any, event_time: int, position: Position) -> Any:
        if state is None:
            return [value, value]
        return [min(state[0], value), max(state[1], value)]

    def merge(self, a: SpreadState, b: SpreadState) -> SpreadState:
        if a is None or b is None:
            return b if a is None else a
        return [min(a[0], b[0]), max(a[1], b[1])]

    def result(self, state: SpreadState) -> Any:
        return None if state is None else state[1] - state[0]

    def sql(self, value: str, passes: str | None) -> str:
        return f"{filtered(f'max({value})', passes)} - {filtered(f'min({value})', passes)}"


def with_spread() -> FeatureSet:
    """The parity tests' declarations, plus spreads over three windows, one filtered."""
    views = _views("views")
    spreads = [
        *Spread.per_window("spread", field="seconds", windows=["10m", "24h", "lifetime"]),
        Spread("seconds", window="1h", name="long_spread_1h", where=lambda v: v.get("page")),
    ]
    group = Aggregations(
        views.source,
        views.entity,
        [*views.features, *spreads],
        time=views.time,
        lateness=views.lateness,
    )
    return FeatureSet([group], tables=[_profiles("profiles")], derived=[PER_VIEW])


FEATURES = with_spread()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_a_kind_of_your_own_passes_the_parity_check(stream):
    records, reads = stream
    instants = sorted((records[i]["arrival"] + extra, entity) for i, extra, entity in reads)
    online = OnlineFeatures(FEATURES)
    expected, fed = [], 0
    for at, entity in instants:
        while fed < len(records) and records[fed]["arrival"] <= at:
            r = records[fed]
            online.process(
                r["source"], r["partition"], r["offset"], r["arrival"], r["key"], r["value"]
            )
            fed += 1
        expected.append(online.vector("member", entity, at=at))
    # state written to a changelog and read back answers the same
    again = OnlineFeatures.load(FEATURES, json.loads(json.dumps(online.dump())))
    if instants:
        at, entity = instants[-1]
        assert again.vector("member", entity, at=at) == expected[-1]

    assert offline_mismatches(FEATURES, records, instants, expected) == []


def test_a_kind_of_your_own_is_checked_fingerprinted_and_named():
    member = Entity("member", "member_id")
    features = FeatureSet([Aggregations("ev", member, [Spread("amount", window="1h")])])
    assert features.names() == ["amount_spread_1h"]
    online = OnlineFeatures(features)
    t0 = 1_700_000_000_000
    with pytest.raises(UnreadableRecord, match=r"'amount_spread_1h' \(spread of 'amount'\)"):
        online.process("ev", 0, 0, t0, "m1", {"member_id": "m1", "amount": "5.5"})
    online.process("ev", 0, 1, t0, "m1", {"member_id": "m1", "amount": 2})
    online.process("ev", 0, 2, t0 + 1, "m1", {"member_id": "m1", "amount": 9.5})
    assert online.vector("member", "m1", at=t0 + 10) == {"amount_spread_1h": 7.5}

    records = [
        {"partition": 0, "offset": i, "arrival": t0 + i, "value": {"member_id": "m1", "amount": a}}
        for i, a in enumerate(["5.5", 2, 9.5])
    ]
    table = events_table(features, "ev", records)
    spine = pa.table({"entity": ["m1"], "at": [t0 + 10]})
    assert build(features, {"ev": table}, spine).column("amount_spread_1h").to_pylist() == [7.5]
    other = FeatureSet([Aggregations("ev", member, [Spread("amount", window="24h")])])
    assert other.fingerprint() != features.fingerprint()
