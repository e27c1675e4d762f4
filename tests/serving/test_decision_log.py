"""The decision log on its own: what it writes, and what it refuses to write."""

from __future__ import annotations

import datetime
import json

from loopline.contracts import LogRegistry
from loopline.serving.backlog import Backlog
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


def test_decisions_on_the_topic_already_are_not_sent_again_after_a_crash(log, tmp_path) -> None:
    # A crash after the log committed a batch, before the backlog forgot it: the rows stay.
    topic = decisions_topic(unique("shop"))
    first = DecisionLog(log, LogRegistry(log), topic, tmp_path / "a", label="shop")
    made = [decision({"views_1h": n}) for n in range(5)]
    for d in made:
        first.submit(d)
    assert first.flush(60)
    first.close()
    consumer = log.consumer(None, [topic.name], reset="earliest")
    try:
        sent = consume_all(consumer, 5)
    finally:
        consumer.close()
    left = Backlog(tmp_path / "b" / "decisions-backlog.db")
    left.append([(r.key, r.value, r.timestamp) for r in sent])
    left.close()
    later = decision({"views_1h": 9})
    second = DecisionLog(log, LogRegistry(log), topic, tmp_path / "b", label="shop")
    second.submit(later)
    try:
        assert second.flush(60)
    finally:
        second.close()
    consumer = log.consumer(None, [topic.name], reset="earliest")
    try:
        records = consume_all(consumer, 7, timeout=5)
    finally:
        consumer.close()
    ids = [json.loads(r.value)["decision_id"] for r in records]
    assert sorted(ids) == sorted([d.decision_id for d in made] + [later.decision_id])
