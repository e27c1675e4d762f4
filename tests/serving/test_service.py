"""The prediction service on a real port, on both backends: answers, decisions, bad requests."""

from __future__ import annotations

import pytest

from serving.helpers import ITEMS, decisions, fit, make_shop, publish, serving, wait_ready


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", "a serving test secret, 16+ bytes")
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


def test_rank_answers_best_first_and_records_every_candidate(shop, tmp_path) -> None:
    publish(shop, shop.ranker, fit(["age", "price"]))
    with serving(shop, shop.ranker, tmp_path) as (client, service):
        assert wait_ready(client)["version"] == 1
        candidates = [*ITEMS, "i-unknown"]
        answer = client.post(
            "/v1/rank",
            json={"entity": "m-2", "candidates": candidates, "k": 3, "context": {"page": "home"}},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["items"]) == 3
        (decision,) = [d for d in decisions(shop.log, service, 1) if d["kind"] == "rank"]
    assert decision["decision_id"] == body["decision_id"]
    assert (decision["model"], decision["model_version"]) == (shop.ranker, 1)
    assert (decision["entity_name"], decision["entity"]) == ("member", "m-2")
    assert decision["context"] == {"page": "home"}
    assert [c["id"] for c in decision["candidates"]] == candidates  # also those not returned
    best = sorted(decision["candidates"], key=lambda c: -c["score"])[:3]  # ties in request order
    assert [item["id"] for item in body["items"]] == [c["id"] for c in best]
    assert best[0]["score"] > by_score(decision, "i-0")
    by_id = {c["id"]: c for c in decision["candidates"]}
    assert by_id["i-3"]["features"] == {"age": 40, "price": 31.0}  # as served
    assert by_id["i-unknown"]["features"] == {"age": 40, "price": None}  # no value, no default
    assert [(r["id"], r["score"], r["probability"]) for r in decision["returned"]] == [
        (item["id"], item["score"], 1.0) for item in body["items"]
    ]
    assert decision["experiment"] == decision["arm"] == ""
    assert decision["arm_probability"] == 1.0  # no experiment: as before experiments
    assert decision["latency_ms"] > 0


def by_score(decision: dict, candidate: str) -> float:
    return next(c["score"] for c in decision["candidates"] if c["id"] == candidate)


def test_predict_scores_one_entity_and_records_it(shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        young = client.post("/v1/predict", json={"entity": "m-0"}).json()
        old = client.post("/v1/predict", json={"entity": "m-4", "context": {"n": 1}}).json()
        assert young["score"] < old["score"]
        assert young["decision_id"] < old["decision_id"]  # UUIDv7: time-ordered
        recorded = {d["decision_id"]: d for d in decisions(shop.log, service, 2)}
    decision = recorded[old["decision_id"]]
    assert decision["candidates"] == [{"id": "m-4", "score": old["score"], "features": {"age": 60}}]
    assert decision["returned"] == [{"id": "m-4", "score": old["score"], "probability": 1.0}]
    assert decision["context"] == {"n": 1}


def test_unknown_entities_are_refused_or_scored_on_defaults(shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        answer = client.post("/v1/predict", json={"entity": "m-new"})
        assert answer.status_code == 404, answer.text
        assert "unknown member 'm-new'" in answer.json()["error"]
        (refused,) = decisions(shop.log, service, 1)  # the monitor counts unknown entities
    assert refused["error"] == "404: unknown member 'm-new'" and refused["entity"] == "m-new"
    assert refused["candidates"] == [] and refused["returned"] == []
    with serving(shop, shop.scorer, tmp_path, unknown_entities="defaults") as (client, service):
        wait_ready(client)
        new = client.post("/v1/predict", json={"entity": "m-new"}).json()
        recorded = {d["decision_id"]: d for d in decisions(shop.log, service, 2)}
    features = recorded[new["decision_id"]]["candidates"][0]["features"]
    assert features == {"age": 30}  # the declared default


def test_bad_requests_get_a_4xx_with_a_message(shop, tmp_path) -> None:
    publish(shop, shop.ranker, fit(["age", "price"]))
    with serving(shop, shop.ranker, tmp_path, max_candidates=5, token="s3cret-serving-token") as (
        client,
        _,
    ):
        wait_ready(client)
        auth = {"Authorization": "Bearer s3cret-serving-token"}

        def post(path: str, content: bytes | str, headers=auth):
            answer = client.post(path, content=content, headers=headers)
            return answer.status_code, answer.json().get("error")

        good = '{"entity": "m-1", "candidates": ["i-1"]}'
        assert post("/v1/rank", good, {})[0] == 401
        assert post("/v1/rank", good, {"Authorization": "Bearer wrong"})[0] == 401
        assert post("/v1/rank", good)[0] == 200
        status, error = post("/v1/rank", '{"entity": "m-1", "candidates": [')
        assert status == 400 and "not valid JSON" in error
        assert post("/v1/rank", "")[0] == 400
        assert post("/v1/rank", "[1, 2]")[0] == 422
        assert post("/v1/rank", '{"entity": "m-1", "candidates": ["i-1"], "top": 1}') == (
            422,
            "Object contains unknown field `top`",
        )
        assert post("/v1/rank", '{"entity": "m-1", "candidates": [1]}') == (
            422,
            "Expected `str`, got `int` - at `$.candidates[0]`",
        )
        assert post("/v1/rank", '{"entity": "m-1", "candidates": ["i-1"], "k": 0}')[0] == 422
        assert (
            post("/v1/rank", '{"entity": "m-1", "candidates": ["i-1"], "context": {"a": {}}}')[0]
            == 422
        )
        assert post("/v1/rank", '{"entity": "m-1", "candidates": []}')[0] == 422
        assert post("/v1/rank", '{"entity": "m-1", "candidates": ["i-1", "i-1"]}') == (
            422,
            "candidate 'i-1' is listed more than once",
        )
        too_many = '{"entity": "m-1", "candidates": ["a", "b", "c", "d", "e", "f"]}'
        assert post("/v1/rank", too_many) == (413, "6 candidates in one request; the limit is 5")
        assert post("/v1/rank", '{"entity": "' + "x" * 2_000_000 + '"}')[0] == 413
        status, error = post("/v1/rank", '{"entity": "m-nobody", "candidates": ["i-1"]}')
        assert status == 404 and "unknown member 'm-nobody'" in error
        status, error = post("/v1/predict", '{"entity": "m-1"}')
        assert status == 422 and "use POST /v1/rank" in error
        assert client.get("/openapi.json").json()["paths"]["/v1/rank"]["post"]["requestBody"]
        metrics = client.get("/metrics").text
        assert "loopline_http_requests_total{" in metrics
        assert "loopline_decisions_backlog" in metrics


def test_readyz_waits_for_a_model(shop, tmp_path) -> None:
    with serving(shop, shop.scorer, tmp_path) as (client, _):
        answer = client.get("/readyz")
        assert answer.status_code == 503 and not answer.json()["ready"]
        assert client.get("/healthz").json() == {"status": "ok"}
        status = client.post("/v1/predict", json={"entity": "m-1"}).status_code
        assert status == 503
        publish(shop, shop.scorer, fit(["age"]))
        assert wait_ready(client)["version"] == 1
        assert client.post("/v1/predict", json={"entity": "m-1"}).status_code == 200
