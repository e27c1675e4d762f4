"""Hot swap under load, refusal of untrusted versions, and decisions kept when their topic is gone.

(A real broker outage: test_log_outage.py.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from loopline.models.registry import MODELS_TOPIC, ModelRegistry
from loopline.models.signing import HmacSigner
from serving.helpers import decisions, fit, make_shop, publish, serving, wait_ready
from support import send_records, unique


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", "a serving test secret, 16+ bytes")
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


@contextmanager
def under_load(client: httpx.Client, threads: int = 3) -> Iterator[list[tuple[int, int | None]]]:
    """Predict requests from `threads` threads until the block ends: (status, version) each."""
    stop = threading.Event()
    answers: list[tuple[int, int | None]] = []

    def load() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as own:
            while not stop.is_set():
                answer = own.post("/v1/predict", json={"entity": "m-3"})
                ok = answer.status_code == 200
                answers.append((answer.status_code, answer.json()["version"] if ok else None))

    running = [threading.Thread(target=load) for _ in range(threads)]
    for thread in running:
        thread.start()
    try:
        time.sleep(0.5)
        yield answers
    finally:
        stop.set()
        for thread in running:
            thread.join()


def test_a_new_version_is_swapped_in_under_load_without_a_failed_request(shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        with under_load(client) as answers:
            publish(shop, shop.scorer, fit(["age"], flip=True))
            deadline = time.monotonic() + 60
            while not any(v == 2 for _, v in answers[-20:]) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        recorded = decisions(shop.log, service, len(answers))
    assert [status for status, _ in answers if status != 200] == []
    versions = [v for _, v in answers]
    assert versions[0] == 1 and versions[-1] == 2
    assert len(recorded) == len(answers)
    last = max(recorded, key=lambda d: d["decision_id"])
    assert last["model_version"] == 2


def test_an_untrusted_version_is_refused_mid_traffic_and_the_old_keeps_serving(
    shop, tmp_path
) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        with under_load(client) as answers:
            stranger = ModelRegistry(shop.log, signer=HmacSigner(b"someone else's key, 16+ bytes"))
            try:
                publish(shop, shop.scorer, fit(["age"], flip=True), registry=stranger)
            finally:
                stranger.close()
            deadline = time.monotonic() + 30
            while 2 not in service.follower.refused and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        assert "does not trust" in service.follower.refused[2]
        assert len(answers) > 10
        assert set(answers) == {(200, 1)}  # no failed request, every answer from v1
        assert client.get("/readyz").json()["version"] == 1
        assert "loopline_serving_models_refused_total" in client.get("/metrics").text


def test_a_forged_alias_move_is_refused_mid_traffic_and_the_new_keeps_serving(
    shop, tmp_path
) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    publish(shop, shop.scorer, fit(["age"], flip=True))  # production: v2
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        with under_load(client) as answers:
            # Anyone who can write to the models topic, pointing production back at v1.
            move = {"kind": "alias", "name": shop.scorer, "alias": "production", "version": 1,
                    "action": "rollback", "previous": 2, "time": 2**41, "by": "mallory"}  # fmt: skip
            key = f"alias/{shop.scorer}/production/{unique('forged')}"
            send_records(shop.log, MODELS_TOPIC, [(key.encode(), json.dumps(move).encode())])
            deadline = time.monotonic() + 30
            while 1 not in service.follower.refused and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        assert "the move is unsigned" in service.follower.refused[1]
        assert len(answers) > 10 and set(answers) == {(200, 2)}
        assert client.get("/readyz").json()["version"] == 2
        refused = [line for line in client.get("/metrics").text.splitlines()
                   if line.startswith("loopline_serving_models_refused_total")]  # fmt: skip
        assert refused and float(refused[0].split()[-1]) >= 1


def test_a_version_reading_undeclared_features_is_refused(shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        publish(shop, shop.scorer, fit(["age", "clicks_1h"]))
        deadline = time.monotonic() + 30
        while 2 not in service.follower.refused and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "does not declare: clicks_1h" in service.follower.refused[2]
        assert client.post("/v1/predict", json={"entity": "m-1"}).json()["version"] == 1


@pytest.mark.parametrize("backend", ["embedded"])  # deleting a shared Kafka topic: not here
def test_the_service_keeps_answering_when_the_decisions_topic_is_gone(log, shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        service.decisions.retry_interval = 0.1
        first = client.post("/v1/predict", json={"entity": "m-1"}).json()["decision_id"]
        assert service.decisions.flush(30)
        topic = service.decisions.topic.name
        log.delete_topic(topic)
        during = [client.post("/v1/predict", json={"entity": "m-2"}) for _ in range(10)]
        assert {a.status_code for a in during} == {200}
        deadline = time.monotonic() + 30
        while len(service.decisions.backlog) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "loopline_decisions_backlog{" in client.get("/metrics").text
        assert len(service.decisions.backlog) == 10
        service.decisions.topic.create(log, shop.schemas)
        recorded = decisions(log, service, 10)
    assert first not in {d["decision_id"] for d in recorded}  # deleted with the topic
    assert sorted(d["decision_id"] for d in recorded) == sorted(
        a.json()["decision_id"] for a in during
    )
