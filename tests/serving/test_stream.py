"""Scoring a topic of requests into a topic of answers, on both backends, and from the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from loopline.serving.service import PredictionService
from loopline.serving.stream import REQUEST_OFFSET, StreamScorer
from loopline.stream.deadletters import REASON
from serving.helpers import KEY, SRC, fit, make_shop, publish
from support import consume_all, unique


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


REQUESTS = [
    b'{"entity": "m-1", "candidates": ["i-1", "i-5", "i-3"], "k": 2}',
    b'{"entity": "m-2", "candidates": ["i-0"], "context": {"page": "feed"}}',
    b'{"entity": "m-1", "candidates": [',  # not JSON
    b'{"entity": "m-nobody", "candidates": ["i-1"]}',  # unknown entity
    b'{"entity": "m-3", "candidates": ["i-2", "i-2"]}',  # a candidate twice
    b'{"entity": "m-4"}',  # a predict request: the ranker needs candidates
]


def _produce(log, topic: str, values: list[bytes]) -> None:
    producer = log.producer()
    for value in values:
        producer.send(topic, value)
    producer.flush()
    producer.close()


def test_a_topic_of_requests_is_answered_into_a_topic(shop, tmp_path) -> None:
    publish(shop, shop.ranker, fit(["age", "price"]))
    requests, answers = unique("requests"), unique("answers")
    shop.log.create_topic(requests)
    _produce(shop.log, requests, REQUESTS)
    service = PredictionService(
        shop.log, shop.app, shop.schemas, state_dir=tmp_path / "state", model=shop.ranker
    )
    scorer = StreamScorer(service, requests, answers)
    try:
        stats = scorer.run_until_caught_up(ready_timeout=60)
        assert service.decisions.flush(60)
    finally:
        scorer.close()
        service.close()
    assert (stats.requests, stats.answered, stats.dead_letters) == (6, 2, 4)
    out = consume_all(shop.log.consumer(None, [answers], reset="earliest"), 2)
    by_offset = {int(dict(r.headers)[REQUEST_OFFSET]): json.loads(r.value) for r in out}
    assert sorted(by_offset) == [0, 1]
    first = by_offset[0]
    assert first["entity"] == "m-1" and len(first["items"]) == 2
    assert first["items"][0]["score"] >= first["items"][1]["score"]
    decisions = consume_all(
        shop.log.consumer(None, [f"{shop.app.name}.decisions"], reset="earliest"), 3
    )
    recorded = [json.loads(d.value) for d in decisions]
    answered = {d["decision_id"] for d in recorded if not d["error"]}
    assert {a["decision_id"] for a in by_offset.values()} == answered
    # the unknown entity is refused (a dead letter) and recorded, as over HTTP
    assert [d["error"] for d in recorded if d["error"]] == ["404: unknown member 'm-nobody'"]
    dead = consume_all(shop.log.consumer(None, [f"{requests}.dlq"], reset="earliest"), 4)
    reasons = [dict(r.headers)[REASON].decode() for r in dead]
    assert reasons[0].startswith("400: the body is not valid JSON")
    assert reasons[1].startswith("404: unknown member 'm-nobody'")
    assert reasons[2] == "422: candidate 'i-2' is listed more than once"
    assert "use POST /v1/rank" in reasons[3]
    assert [r.value for r in dead] == REQUESTS[2:]


def test_loopline_serve_from_to_scores_until_stopped(shop, log_url, tmp_path) -> None:
    publish(shop, shop.ranker, fit(["age", "price"]))
    requests, answers = unique("requests"), unique("answers")
    shop.log.create_topic(requests)
    shop.log.create_topic(answers)  # the scorer makes it too; the test reads it from the start
    _produce(shop.log, requests, REQUESTS[:2])
    (tmp_path / "servedapp.py").write_text(_app_source(shop))
    command = [
        sys.executable,
        "-m",
        "loopline",
        "--log",
        log_url,
        "serve",
        "servedapp:app",
        "--model",
        shop.ranker,
        "--from",
        requests,
        "--to",
        answers,
        "--state-dir",
        str(tmp_path / "state"),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC]),
        "LOOPLINE_SIGNING_KEY": KEY,
    }
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        out = consume_all(shop.log.consumer(None, [answers], reset="earliest"), 2, timeout=90)
        assert len(out) == 2
        _produce(shop.log, requests, REQUESTS[2:3])
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "3 requests: 2 answered, 1 dead-lettered" in stderr


def _app_source(shop) -> str:
    """Python source declaring the same App as `make_shop` built (same topics and names)."""
    tables = shop.app.features.tables
    profiles, items = tables[0].source, tables[1].source
    return f"""
from loopline.app import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer

member, item = Entity("member", "member_id"), Entity("item", "item_id")
app = App({shop.app.name!r}, features=FeatureSet(tables=[
    Table({profiles!r}, member, [TableFeature("age", "age", default=30)]),
    Table({items!r}, item, [TableFeature("price", "price"), TableFeature("stock", "stock")]),
]), models=[
    Model({shop.ranker!r}, trainer=LightGBMTrainer, entity="member", features=["age", "price"]),
    Model({shop.scorer!r}, trainer=LightGBMTrainer, entity="member", features=["age"]),
])
"""


def test_serve_from_to_refuses_unknown_topics_unless_asked_to_create(
    shop, log_url, tmp_path, monkeypatch
) -> None:
    from click.testing import CliRunner

    from loopline.cli import cli

    publish(shop, shop.ranker, fit(["age", "price"]))
    module = unique("servedapp").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(_app_source(shop))
    monkeypatch.syspath_prepend(str(tmp_path))
    requests, answers = unique("requestz"), unique("answerz")  # misspelled: neither exists
    base = ["--log", log_url, "serve", f"{module}:app", "--model", shop.ranker]
    base += ["--from", requests, "--to", answers, "--until-caught-up"]
    base += ["--state-dir", str(tmp_path / "state")]
    refused = CliRunner().invoke(cli, base)
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == (
        f"error: --from: topic {requests!r} does not exist; create it "
        f"(loopline topics create {requests}) or pass --create-topics\n"
    )
    assert requests not in shop.log.list_topics() and answers not in shop.log.list_topics()
    shop.log.create_topic(requests)
    refused = CliRunner().invoke(cli, base)
    assert refused.stderr.startswith(f"error: --to: topic {answers!r} does not exist")
    created = CliRunner().invoke(cli, [*base, "--create-topics"])
    assert created.exit_code == 0, created.output
    assert answers in shop.log.list_topics()
