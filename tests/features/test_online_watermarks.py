"""Lateness decided online, record by record, equals the oracle's over the whole log."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from features.reference import Event, late_positions
from loopline.features.online import Watermarks


@st.composite
def logs(draw: st.DrawFn) -> list[Event]:
    events = []
    for partition in range(draw(st.integers(1, 3))):
        for offset in range(draw(st.integers(0, 30))):
            event_time = draw(st.integers(0, 10_000))
            events.append(Event(partition, offset, 0, event_time, "e", {}))
    return events


@given(logs(), st.sampled_from([0, 1, 100, 1_000]), st.randoms(use_true_random=False))
def test_late_records_are_the_oracles_whatever_the_partition_interleaving(
    events: list[Event], lateness: int, rng: random.Random
) -> None:
    queues = {p: [e for e in events if e.partition == p] for p in {e.partition for e in events}}
    marks = Watermarks()
    late = set()
    while any(queues.values()):
        e = queues[rng.choice([p for p, q in queues.items() if q])].pop(0)
        if marks.is_late(e.partition, e.event_time, lateness):
            late.add((e.partition, e.offset))
        marks.observe(e.partition, e.event_time)
        if rng.random() < 0.2:
            marks = Watermarks.load(json.loads(json.dumps(marks.dump())))
    assert late == late_positions(events, lateness)


def test_the_first_record_of_each_partition_is_never_late() -> None:
    marks = Watermarks()
    marks.observe(0, 1_000_000)
    assert not marks.is_late(1, 0, lateness=0)
    assert marks.is_late(0, 0, lateness=0)
    assert marks.get(0) == 1_000_000 and marks.get(1) is None
