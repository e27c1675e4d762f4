"""The decision log on its own: what it writes, and what it refuses to write."""

from __future__ import annotations

import datetime
import json

from loopline.contracts import LogRegistry
from loopline.serving.decision_log import DecisionLog
from loopline.serving.decisions import Candidate, Decision, Returned, decisions_topic
from loopline.serving.ids import uuid7
from support import consume_all, unique


def decision(features: dict) -> Decision:
    return Decision(
        decision_id=str(uuid7()),
        at=datetime.datetime.now(datetime.UTC),
        kind="rank",
        model="ranker",
        model_version=2,
        entity_name="member",
        entity="m-1",
        context={"page": "home"},
        candidates=[Candidate("i-1", 0.25, {"views_1h": 3}), Candidate("i-2", 0.75, features)],
        returned=[Returned("i-2", 0.75), Returned("i-1", 0.25)],
        latency_ms=1.5,
    )


def test_a_decision_with_a_value_that_is_not_a_scalar_is_dropped_and_counted(log, tmp_path) -> None:
    topic = decisions_topic(unique("shop"))
    writer = DecisionLog(log, LogRegistry(log), topic, tmp_path, label="shop")
    good, bad = decision({"views_1h": 0}), decision({"views_1h": [1, 2]})
    try:
        writer.submit(bad)
        writer.submit(good)
        assert writer.flush(60)
    finally:
        writer.close()
    assert (writer.written, writer.dropped) == (1, 1)
    consumer = log.consumer(None, [topic.name], reset="earliest")
    try:
        [record] = consume_all(consumer, 1)
    finally:
        consumer.close()
    written = json.loads(record.value)
    assert written["decision_id"] == good.decision_id
    assert [c["features"] for c in written["candidates"]] == [{"views_1h": 3}, {"views_1h": 0}]
    assert record.key == b"m-1"
