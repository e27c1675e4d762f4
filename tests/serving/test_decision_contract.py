"""Decisions and labelled examples v2 (``arm_probability``) pass the backward rule over v1.

A log that holds v1 of either contract (every deployment before experiments)
takes v2 when a new serving process or joiner starts, and what v1 wrote still
decodes, with an arm probability of 1.0.
"""

from __future__ import annotations

import datetime

import msgspec
import pytest

from loopline.contracts import LogRegistry, avro_schema
from loopline.outcomes.labelled import LabelledExample, labelled_examples_topic
from loopline.serving.decisions import Candidate, Decision, Returned, decisions_topic
from support import unique


def v1_of(record_type: type) -> dict:
    """The contract's v1: the v2 schema without the field v2 added."""
    schema = avro_schema(record_type)
    return {**schema, "fields": [f for f in schema["fields"] if f["name"] != "arm_probability"]}


@pytest.mark.parametrize(
    "record_type, topic_of",
    [(Decision, decisions_topic), (LabelledExample, labelled_examples_topic)],
)
def test_v2_registers_over_v1_under_the_backward_rule(log, record_type, topic_of) -> None:
    registry = LogRegistry(log, topic=unique("schemas"))
    topic = topic_of(unique("shop"))
    assert registry.register(topic.contract_name, v1_of(record_type)).version == 1
    topic.create(log, registry)  # what a serving process (or joiner) of this version does
    assert [v.version for v in registry.versions(topic.contract_name)] == [1, 2]
    assert registry.mode(topic.contract_name) == "backward"
    registry.close()


def test_a_v1_decision_decodes_with_an_arm_probability_of_one() -> None:
    at = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)
    now = Decision(
        "d-1", at, "predict", "m", 3, "member", "m-1", {}, [Candidate("m-1", 0.5, {})],
        [Returned("m-1", 0.5)], 1.5, experiment="ab", arm="v7", arm_probability=0.1,
    )  # fmt: skip
    v1 = msgspec.json.decode(msgspec.json.encode(now))
    del v1["arm_probability"]
    old = msgspec.json.decode(msgspec.json.encode(v1), type=Decision)
    assert old == msgspec.structs.replace(now, arm_probability=1.0)


def test_a_labelled_example_carries_its_decisions_arm_and_probability() -> None:
    from loopline.outcomes.declarations import Outcomes
    from loopline.outcomes.labelled import examples

    decision = {
        "decision_id": "d-1", "model": "m", "model_version": 7, "entity": "m-1",
        "experiment": "ab", "arm": "v7", "arm_probability": 0.25,
        "candidates": [{"id": "m-1", "score": 0.5, "features": {"age": 3}}],
        "returned": [{"id": "m-1", "score": 0.5, "probability": 1.0}],
    }  # fmt: skip
    (example,) = examples(decision, 0, [("click", "m-1", 1.0)], Outcomes(window="1h"), closed_at=1)
    record = LabelledExample(**example)
    assert (record.experiment, record.arm, record.arm_probability) == ("ab", "v7", 0.25)
    del decision["arm_probability"]  # a v1 decision
    (example,) = examples(decision, 0, [], Outcomes(window="1h"), closed_at=1)
    assert example["arm_probability"] == 1.0
