"""The join's algebra: one answer whatever the interleaving of the two topics and the crashes.

`JoinState` (one partition of the joiner) is fed decisions and outcomes in
any interleaving of the two streams, each stream out of order by at most
the declared lateness, with repeated decisions, commits at random points
(the changelog is what survives) and crashes (state rebuilt from the
changelog, uncommitted output thrown away, records read again). Its
committed labelled examples and late outcomes must equal a brute-force
reading of the matching rules.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.outcomes import Outcomes
from loopline.outcomes.labelled import examples as examples_of
from loopline.outcomes.state import JoinState

WINDOW = 100
ENTITIES = ["m1", "m2", "m3"]
ITEMS = ["i1", "i2", "i3", "i4"]


def _decision(did: str, entity: str, kind: str, returned: list[str]) -> dict[str, Any]:
    return {
        "decision_id": did,
        "kind": kind,
        "model": "m",
        "model_version": 1,
        "entity": entity,
        "candidates": [
            {"id": r, "score": 0.5, "features": {"f": n}} for n, r in enumerate(returned)
        ],
        "returned": [{"id": r, "score": 0.5, "probability": 1.0} for r in returned],
    }


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    lateness = draw(st.sampled_from([0, 20]))
    outcomes_config = Outcomes(
        window=WINDOW,
        lateness=lateness,
        positive=draw(st.sampled_from([(), ("click",)])),
        label=draw(st.sampled_from(["binary", "value"])),
    )
    decisions, outcomes, t = [], [], 1_000
    for n in range(draw(st.integers(1, 14))):
        t += draw(st.integers(0, 40))
        entity = draw(st.sampled_from(ENTITIES))
        kind = draw(st.sampled_from(["rank", "predict"]))
        returned = (
            [entity]
            if kind == "predict"
            else draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=3, unique=True))
        )
        decision = _decision(f"d{n}", entity, kind, returned)
        decisions.append((decision, t))
        for item in returned:
            if draw(st.booleans()):
                at = t + draw(st.integers(-10, WINDOW + 40))
                how = draw(st.sampled_from(["id", "item", "id+item", "neither"]))
                outcome = {
                    "entity": entity,
                    "type": draw(st.sampled_from(["click", "view"])),
                    "decision_id": decision["decision_id"] if "id" in how else "",
                    "item": item if "item" in how else "",
                    "value": draw(st.sampled_from([1.0, 2.5])),
                }
                outcomes.append((outcome, at))
    for _ in range(draw(st.integers(0, 3))):  # about nothing anyone decided
        outcome = {"entity": "m9", "type": "click", "decision_id": "", "item": "i1", "value": 1.0}
        outcomes.append((outcome, draw(st.integers(1_000, t + WINDOW))))

    def disordered(records: list) -> list:  # each record at most `lateness` behind another
        jitter = [draw(st.integers(0, lateness)) for _ in records]
        order = sorted(range(len(records)), key=lambda i: records[i][1] + jitter[i])
        return [records[i] for i in order]

    decision_stream = []
    for decision, at in disordered(decisions):
        decision_stream.append(("d", decision, at))
        if draw(st.integers(0, 9)) == 0:  # delivered twice
            decision_stream.append(("d", decision, at))
    outcome_stream = [("o", o, at) for o, at in disordered(outcomes)]
    picks = draw(st.lists(st.booleans(), min_size=len(decision_stream) + len(outcome_stream)))
    events, a, b = [], list(decision_stream), list(outcome_stream)
    for take_decision in picks:
        if a and (take_decision or not b):
            events.append(a.pop(0))
        elif b:
            events.append(b.pop(0))
    events += a + b
    events = [(kind, value, at, str(n)) for n, (kind, value, at) in enumerate(events)]
    commits = draw(st.sets(st.integers(1, len(events))))
    crashes = draw(st.sets(st.integers(1, len(events))))
    return {
        "outcomes": outcomes_config,
        "decisions": decisions,
        "outcome_records": outcomes,
        "events": events,
        "commits": commits,
        "crashes": crashes,
    }


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _restored(outcomes: Outcomes, changelog: dict[str, Any]) -> JoinState:
    state = JoinState(outcomes)
    for key, value in changelog.items():
        state.load(key, _copy(value))
    state.take_changes()
    return state


def _joined(scenario: dict[str, Any]) -> tuple[Counter, Counter]:
    """What JoinState commits, with commits and crashes where the scenario says."""
    outcomes, events = scenario["outcomes"], scenario["events"]
    changelog: dict[str, Any] = {}  # key -> latest value, in order of the last write
    committed: list[tuple[list, list]] = []
    pending: list[tuple[list, list]] = []
    state, position, crashed, i, done = JoinState(outcomes), 0, set(), 0, False
    while not done:
        if i < len(events):
            kind, value, at, offset = events[i]
            if kind == "d":
                pending.append(state.decision(_copy(value), at))
            else:
                pending.append(state.outcome(_copy(value), at, key=offset))
            i += 1
        else:
            pending.append(state.close_until(10**9))  # the wall clock, long after
            done = True
        if i in scenario["commits"] or i == len(events):
            for key, value in state.take_changes():
                changelog.pop(key, None)
                changelog[key] = _copy(value)
            committed += pending
            pending, position = [], i
        if not done and i in scenario["crashes"] and i not in crashed:
            crashed.add(i)
            state, pending, i = _restored(outcomes, changelog), [], position
    examples = Counter(json.dumps(e, sort_keys=True) for ex, _ in committed for e in ex)
    late = Counter(json.dumps([o, at], sort_keys=True) for _, ls in committed for o, at, _ in ls)
    return examples, late


def _reference(scenario: dict[str, Any]) -> tuple[Counter, Counter]:
    """The matching rules read literally, over everything at once."""
    decisions = scenario["decisions"]
    matched: dict[str, list] = {d["decision_id"]: [] for d, _ in decisions}
    late = Counter()
    for outcome, at in scenario["outcome_records"]:
        if outcome["decision_id"]:
            candidates = [
                (t, d) for d, t in decisions if d["decision_id"] == outcome["decision_id"]
            ]
        else:
            item = outcome["item"] or outcome["entity"]
            candidates = [
                (t, d)
                for d, t in decisions
                if d["entity"] == outcome["entity"] and item in [r["id"] for r in d["returned"]]
            ]
        candidates = [(t, d["decision_id"], d) for t, d in candidates if t <= at]
        if candidates and at < max(candidates)[0] + WINDOW:
            _, did, decision = max(candidates)
            top = decision["returned"][0]["id"] if decision["kind"] == "rank" else None
            item = outcome["item"] or top or decision["entity"]
            matched[did].append((outcome["type"], item, outcome["value"]))
        else:
            late[json.dumps([outcome, at], sort_keys=True)] += 1
    examples = Counter()
    for decision, at in decisions:
        hits = matched[decision["decision_id"]]
        for e in examples_of(decision, at, hits, scenario["outcomes"], closed_at=at + WINDOW):
            examples[json.dumps(e, sort_keys=True)] += 1
    return examples, late


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_any_interleaving_and_any_crashes_give_the_reference_join(scenario) -> None:
    assert _joined(scenario) == _reference(scenario)


def test_a_decision_read_after_its_window_closed_is_not_joined() -> None:
    state = JoinState(Outcomes(window=WINDOW))
    state.decision(_decision("d1", "m1", "predict", ["m1"]), 1_000)
    state.outcome({"entity": "m1", "type": "click", "decision_id": "", "item": ""}, 1_050)
    examples, late = state.close_until(5_000)
    assert [e["label"] for e in examples] == [1.0] and late == []
    assert state.decision(_decision("d0", "m1", "predict", ["m1"]), 900) == ([], [])
    assert state.late_decisions == 1 and not state.open
    assert state.close_until(10_000) == ([], [])


def test_late_outcomes_say_why() -> None:
    state = JoinState(Outcomes(window=WINDOW))
    state.decision(_decision("d1", "m1", "predict", ["m1"]), 1_000)
    late = []
    for did, at in (("d1", 990), ("d1", 1_100), ("", 1_050), ("d9", 1_050)):
        outcome = {"entity": "m1" if did != "d9" else "m9", "type": "t", "decision_id": did}
        late += state.outcome({**outcome, "item": ""}, at)[1]
    late += state.close_until(10_000)[1]
    assert sorted((at, why) for _, at, why in late) == [
        (990, "before its decision"),
        (1_050, "no open decision to join"),
        (1_100, f"after its decision's window ({WINDOW} ms)"),
    ]
