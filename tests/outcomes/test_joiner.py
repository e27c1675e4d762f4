"""The outcome joiner on both backends: matching, windows, late outcomes, repeats, labels."""

from __future__ import annotations

import dataclasses
import datetime
import json

import pytest

from loopline.app import App, AppError
from loopline.contracts import LogRegistry
from loopline.contracts.codecs import JsonCodec
from loopline.log import TopicConfig
from loopline.models.training_data import from_labelled
from loopline.outcomes import Outcome, Outcomes, outcomes_topic
from loopline.outcomes.joiner import LATE_REASON, OutcomeJoiner
from serving.helpers import KEY, fit, make_shop, publish, serving, wait_ready
from support import consume_all, unique

T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z
MINUTE = 60_000


def iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def rank_decision(did: str, entity: str, at: int, returned: list[str], version: int = 1) -> dict:
    candidates = [*returned, "not-shown"]
    return {
        "decision_id": did,
        "at": iso(at),
        "kind": "rank",
        "model": "pymk",
        "model_version": version,
        "entity_name": "member",
        "entity": entity,
        "context": {},
        "candidates": [
            {"id": c, "score": 1.0 / (i + 1), "features": {"rank_feature": i, "who": c}}
            for i, c in enumerate(candidates)
        ],
        "returned": [
            {"id": c, "score": 1.0 / (i + 1), "probability": 1.0} for i, c in enumerate(returned)
        ],
        "latency_ms": 1.0,
    }


def outcome(entity: str, at: int, type: str = "accepted", **more) -> dict:
    return {"entity": entity, "type": type, "at": iso(at), **more}


def produce(log, topic: str, records: list[tuple[dict, int]]) -> None:
    producer = log.producer()
    for value, at in records:
        producer.send(topic, json.dumps(value).encode(), value["entity"].encode(), timestamp=at)
    producer.flush()
    producer.close()


def labelled(log, app: App, expected: int) -> list[dict]:
    consumer = log.consumer(None, [f"{app.name}.labelled"], reset="earliest")
    try:
        return [json.loads(r.value) for r in consume_all(consumer, expected)]
    finally:
        consumer.close()


def late(log, app: App, expected: int) -> list[tuple[dict, str]]:
    consumer = log.consumer(None, [f"{app.name}.outcomes.late"], reset="earliest")
    try:
        return [
            (json.loads(r.value), dict(r.headers)[LATE_REASON].decode())
            for r in consume_all(consumer, expected)
        ]
    finally:
        consumer.close()


def test_outcomes_join_by_item_and_by_id_and_windows_close_into_negatives(log) -> None:
    app = App(unique("pymk"), outcomes=Outcomes(window="10m", positive=["accepted"]))
    joiner = OutcomeJoiner(log, app, commit_interval=0.05)
    decisions = [
        (rank_decision("d-1", "m-1", T0, ["m-7", "m-8"]), T0),
        (rank_decision("d-1", "m-1", T0, ["m-7", "m-8"]), T0 + 1),  # the same one again
        (rank_decision("d-2", "m-2", T0 + MINUTE, ["m-7"]), T0 + MINUTE),
        (rank_decision("d-3", "m-1", T0 + 2 * MINUTE, ["m-9"]), T0 + 2 * MINUTE),
        (rank_decision("d-4", "m-3", T0 + 30 * MINUTE, ["m-1"]), T0 + 30 * MINUTE),
    ]
    outcomes = [
        (outcome("m-1", T0 + 5_000, item="m-8"), T0 + 5_000),  # by item: d-1
        (outcome("m-2", T0 + 2 * MINUTE, "viewed", decision_id="d-2", item="m-7"), T0 + 2 * MINUTE),
        (outcome("m-1", T0 + 3 * MINUTE, decision_id="d-3", item="m-9"), T0 + 3 * MINUTE),
        (outcome("m-2", T0 + 12 * MINUTE, decision_id="d-2", item="m-7"), T0 + 12 * MINUTE),
        (outcome("m-5", T0 + 20 * MINUTE, item="m-1"), T0 + 20 * MINUTE),  # no decision
        (outcome("m-3", T0 + 31 * MINUTE, item="m-1"), T0 + 31 * MINUTE),  # d-4
    ]
    produce(log, f"{app.name}.decisions", decisions)
    produce(log, f"{app.name}.outcomes", outcomes)
    try:
        stats = joiner.run_until_caught_up(clock=lambda: T0 + 60 * MINUTE)
    finally:
        joiner.close()
    examples = {(e["decision_id"], e["item"]): e for e in labelled(log, app, 5)}
    assert {k: e["label"] for k, e in examples.items()} == {
        ("d-1", "m-7"): 0.0,  # no outcome in its window: a negative
        ("d-1", "m-8"): 1.0,
        ("d-2", "m-7"): 0.0,  # "viewed" is not a positive type; the acceptance came too late
        ("d-3", "m-9"): 1.0,
        ("d-4", "m-1"): 1.0,
    }
    first = examples[("d-1", "m-8")]
    assert first["features"] == {"rank_feature": 1, "who": "m-8"}  # exactly as served
    assert (first["position"], first["at"], first["model_version"]) == (1, T0, 1)
    assert first["outcomes"] == ["accepted"]
    assert examples[("d-2", "m-7")]["outcomes"] == ["viewed"]
    reasons = sorted(why for _, why in late(log, app, 2))
    assert reasons[0].startswith("after its decision's window")
    assert reasons[1] == "no open decision to join"
    assert (stats.decisions, stats.duplicates, stats.outcomes) == (5, 1, 6)
    assert (stats.matched, stats.late, stats.examples, stats.positives) == (4, 2, 5, 3)


def test_without_negatives_unmatched_items_are_dropped_and_values_sum(log) -> None:
    app = App(unique("shop"), outcomes=Outcomes(window="1h", label="value", negatives=False))
    decisions = [(rank_decision("d-1", "m-1", T0, ["i-1", "i-2", "i-3"]), T0)]
    outcomes = [
        (outcome("m-1", T0 + 1_000, "purchase", item="i-2", value=20.0), T0 + 1_000),
        (outcome("m-1", T0 + 2_000, "purchase", item="i-2", value=5.5), T0 + 2_000),
        (outcome("m-1", T0 + 3_000, "purchase", item="i-3", value=1.0), T0 + 3_000),
    ]
    joiner = OutcomeJoiner(log, app)  # makes the topics
    produce(log, f"{app.name}.decisions", decisions)
    produce(log, f"{app.name}.outcomes", outcomes)
    try:
        stats = joiner.run_until_caught_up(clock=lambda: T0 + 2 * 3_600_000)
    finally:
        joiner.close()
    got = sorted((e["item"], e["label"]) for e in labelled(log, app, 2))
    assert got == [("i-2", 25.5), ("i-3", 1.0)]
    assert stats.dropped == 1


def test_an_unreadable_record_goes_to_the_dead_letter_topic(log) -> None:
    app = App(unique("shop"), outcomes=Outcomes(window="1h"))
    joiner = OutcomeJoiner(log, app)
    producer = log.producer()
    producer.send(f"{app.name}.outcomes", b'{"entity": "m-1"}', b"m-1")  # no type, no time
    producer.send(f"{app.name}.decisions", b"not json", b"m-1")
    producer.flush()
    producer.close()
    try:
        stats = joiner.run_until_caught_up()
    finally:
        joiner.close()
    assert stats.dead_letters == 2
    for topic in ("outcomes", "decisions"):
        consumer = log.consumer(None, [f"{app.name}.{topic}.dlq"], reset="earliest")
        assert len(consume_all(consumer, 1)) == 1
        consumer.close()


def test_an_app_without_outcomes_is_refused_with_what_to_add(log) -> None:
    with pytest.raises(AppError, match="outcomes=Outcomes"):
        OutcomeJoiner(log, App(unique("bare")))


def test_topics_partitioned_differently_are_refused(log) -> None:
    app = App(unique("shop"), outcomes=Outcomes(window="1h"))
    log.create_topic(f"{app.name}.decisions", TopicConfig(partitions=2))
    log.create_topic(f"{app.name}.outcomes", TopicConfig(partitions=3))
    with pytest.raises(AppError, match=r"2 partitions and .* 3: .* give both the same number"):
        OutcomeJoiner(log, app)


def test_a_quiet_stream_closes_by_the_clock_also_after_a_restart(log) -> None:
    """Nothing new arrives: the clock closes the window, in a joiner restarted meanwhile.

    The outcomes topic is bound to the outcome contract in Avro: the joiner
    reads it with the registry.
    """
    registry = LogRegistry(log)
    app = App(unique("shop"), outcomes=Outcomes(window="10m", positive=["accepted"]))
    typed = dataclasses.replace(outcomes_topic(app.name), encoding="avro")
    typed.create(log, registry)
    now = T0 + MINUTE
    joiner = OutcomeJoiner(log, app, registry, clock=lambda: now)
    produce(log, f"{app.name}.decisions", [(rank_decision("d-1", "m-1", T0, ["m-7", "m-8"]), T0)])
    at = datetime.datetime.fromtimestamp((T0 + 30_000) / 1000, datetime.UTC)
    producer = typed.producer(log, registry)
    producer.send(Outcome(entity="m-1", type="accepted", at=at, item="m-7"))
    producer.flush()
    producer.close()
    try:
        stats = joiner.run_until_caught_up()
    finally:
        joiner.close()
    assert (stats.matched, stats.examples, stats.dead_letters) == (1, 0, 0)  # still open
    now = T0 + 11 * MINUTE
    again = OutcomeJoiner(log, app, registry, clock=lambda: now)
    try:
        stats = again.run_until_caught_up()
    finally:
        again.close()
        registry.close()
    assert (stats.decisions, stats.outcomes, stats.examples, stats.positives) == (0, 0, 2, 1)
    got = sorted((e["item"], e["label"], e["closed_at"]) for e in labelled(log, app, 2))
    assert got == [("m-7", 1.0, T0 + 10 * MINUTE), ("m-8", 0.0, T0 + 10 * MINUTE)]


def test_decisions_of_a_real_service_become_training_data(log, tmp_path, monkeypatch) -> None:
    """Service -> decisions -> outcomes -> joiner -> labelled -> the trainer's reader."""
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    shop = make_shop(log)
    app = App(
        shop.app.name,
        features=shop.app.features,
        models=shop.app.models,
        outcomes=Outcomes(window="1h", positive=["churned"]),
    )
    shop.app = app
    publish(shop, shop.scorer, fit(["age"]))
    answers = []
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        for member in ("m-0", "m-1", "m-2", "m-3"):
            answers.append(client.post("/v1/predict", json={"entity": member}).json())
        assert service.decisions.flush(60)
    now = datetime.datetime.now(datetime.UTC)
    at = int(now.timestamp() * 1000)
    joiner = OutcomeJoiner(log, app, shop.schemas)  # reads the decisions with their contract
    produce(
        log,
        f"{app.name}.outcomes",
        [(outcome("m-1", at, "churned", decision_id=answers[1]["decision_id"]), at)],
    )
    try:
        stats = joiner.run_until_caught_up(clock=lambda: at + 2 * 3_600_000)
    finally:
        joiner.close()
    assert (stats.examples, stats.positives) == (4, 1)
    examples = {e["entity"]: e for e in labelled(log, app, 4)}
    assert examples["m-1"]["label"] == 1.0
    assert examples["m-2"]["features"] == {"age": 40}  # as served (the profile's age)
    assert examples["m-1"]["decision_id"] == answers[1]["decision_id"]
    data = from_labelled(log, app, app.model(shop.scorer), f"{app.name}.labelled")
    assert data.table.num_rows == 4
    assert sorted(data.table.column(data.label).to_pylist()) == [0, 0, 0, 1]
    shop.models.close()
    shop.schemas.close()


def test_an_outcome_time_may_be_epoch_ms_or_any_rfc3339_offset(log) -> None:
    # The contract says timestamp-millis: an app writing `at` as epoch ms is understood.
    app = App(unique("shop"), outcomes=Outcomes(window="1h", label="value", negatives=False))
    decisions = [(rank_decision("d-1", "m-1", T0, ["i-1", "i-2"]), T0)]
    in_paris = datetime.datetime.fromtimestamp(
        (T0 + 2_000) / 1000, datetime.timezone(datetime.timedelta(hours=2))
    ).isoformat()
    outcomes = [
        ({"entity": "m-1", "type": "buy", "at": T0 + 1_000, "item": "i-1"}, T0 + 1_000),
        ({"entity": "m-1", "type": "buy", "at": in_paris, "item": "i-2"}, T0 + 2_000),
    ]
    joiner = OutcomeJoiner(log, app)
    produce(log, f"{app.name}.decisions", decisions)
    produce(log, f"{app.name}.outcomes", outcomes)
    try:
        stats = joiner.run_until_caught_up(clock=lambda: T0 + 2 * 3_600_000)
    finally:
        joiner.close()
    assert stats.dead_letters == 0
    assert sorted(e["item"] for e in labelled(log, app, 2)) == ["i-1", "i-2"]


def test_an_outcome_with_epoch_ms_goes_through_the_contract() -> None:
    codec = JsonCodec(Outcome)
    written = codec.encode({"entity": "m-1", "type": "buy", "at": T0 + 1})
    assert codec.decode(written).at == datetime.datetime(2024, 5, 1, 12, 0, 0, 1000, datetime.UTC)
    other_client = json.dumps({"entity": "m-1", "type": "buy", "at": T0}).encode()
    assert codec.decode(other_client).at == datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)
