"""schemathesis against the OpenAPI document of every loopline HTTP server, on a real port.

Valid and invalid cases for every operation of the ingest server, the schema
registry and the prediction service, most with the token and some without:
no answer may be a 5xx, and nothing a refused request sent may reach the log.
"""

from __future__ import annotations

import json
from collections import Counter

import msgspec
import pytest
from fuzzing import fuzz
from hypothesis import strategies as st

from loopline.connectors.http import create_app as ingest_app
from loopline.contracts import LogRegistry, Topic
from loopline.contracts.registry_http import create_registry_app
from loopline.http.server import running
from loopline.log import Log
from serving.helpers import ITEMS, MEMBERS, decisions, fit, make_shop, publish, serving, wait_ready
from support import consume_all, examples

TOKEN = "openapi-fuzz-token-0123"


class Click(msgspec.Struct):
    member_id: str
    item: int


def count(log: Log, topic: str) -> int:
    return sum(p.end - p.start for p in log.describe_topic(topic).partitions)


def test_ingest_server(log, backend, new_topic) -> None:
    registry = LogRegistry(log)
    bound, plain = new_topic(partitions=2), new_topic()
    Topic(bound, Click, key="member_id").create(log, registry)
    app = ingest_app(log, registry, token=TOKEN, max_body_bytes=65_536, max_records=50)

    def existing_topic(case, data) -> None:
        if data.draw(st.integers(0, 4)) < 4:  # hypothesis starts at 0: tweak first
            topic = data.draw(st.sampled_from([bound, plain]))
            case.path_parameters = {**case.path_parameters, "topic": topic}
            if not data.draw(st.booleans()):
                good = st.fixed_dictionaries(
                    {"member_id": st.text(max_size=5), "item": st.integers(0, 9)}
                )
                case.body = data.draw(st.lists(good, max_size=5))

    with running(app) as url:
        run = fuzz(
            url,
            app.openapi(),
            examples=examples(backend, embedded=150, kafka=40),
            token=TOKEN,
            adjust={"POST /v1/topics/{topic}/records": existing_topic},
        )
    assert not run.server_errors(), run.server_errors()[:5]
    produced = Counter()
    for _, _, response in run.answers:
        if response.status_code == 200 and "produced" in response.json():
            produced[response.json()["topic"]] += response.json()["produced"]
    assert run.statuses[200] and run.statuses[400], run.statuses
    assert count(log, bound) == produced[bound]
    assert count(log, plain) == produced[plain]
    registry.close()


def test_schema_registry(log, backend, new_topic) -> None:
    registry = LogRegistry(log)
    subjects = [f"{new_topic()}-value" for _ in range(2)]
    app = create_registry_app(registry, token=TOKEN, max_body_bytes=65_536)
    schemas = st.sampled_from(
        [
            {"type": "record", "name": "A", "fields": [{"name": "x", "type": "long"}]},
            {"type": "record", "name": "A", "fields": [{"name": "x", "type": "string"}]},
            {
                "type": "record",
                "name": "A",
                "fields": [
                    {"name": "x", "type": "long"},
                    {"name": "y", "type": ["null", "string"], "default": None},
                ],
            },
        ]
    )

    def our_subject(case, data) -> None:
        if "subject" in case.path_parameters and data.draw(st.integers(0, 3)) < 3:
            subject = data.draw(st.sampled_from(subjects))
            case.path_parameters = {**case.path_parameters, "subject": subject}
            if case.method.upper() == "POST" and not data.draw(st.booleans()):
                case.body = {"schema": json.dumps(data.draw(schemas))}

    adjust = {
        f"{method} {path}": our_subject
        for method, path in [
            ("POST", "/subjects/{subject}/versions"),
            ("POST", "/subjects/{subject}"),
            ("POST", "/compatibility/subjects/{subject}/versions"),
            ("PUT", "/config/{subject}"),
            ("GET", "/subjects/{subject}/versions"),
        ]
    }
    with running(app) as url:
        run = fuzz(
            url,
            app.openapi(),
            examples=examples(backend, embedded=25, kafka=8),
            token=TOKEN,
            adjust=adjust,
        )
    assert not run.server_errors(), run.server_errors()[:5]
    # Every version held under a subject the fuzz wrote to was answered 200; nothing else.
    registrations = [
        (case.path_parameters["subject"], response)
        for label, case, response in run.answers
        if label == "POST /subjects/{subject}/versions"
    ]
    registered = {r.json()["id"] for _, r in registrations if r.status_code == 200}
    registry.refresh()
    names = set(registry.names()) & ({subject for subject, _ in registrations} | set(subjects))
    held = {v.schema_id for name in names for v in registry.versions(name)}
    assert held == registered
    assert registered, run.statuses
    registry.close()


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", "a serving test secret, 16+ bytes")
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


def test_prediction_service(shop, backend, tmp_path) -> None:
    publish(shop, shop.ranker, fit(["age", "price"]))

    def known(case, data) -> None:
        # New objects, never the drawn ones changed: hypothesis replays cases.
        if isinstance(case.body, dict) and data.draw(st.integers(0, 3)) < 3:
            body = {**case.body, "entity": data.draw(st.sampled_from(MEMBERS))}
            if not data.draw(st.booleans()):
                body["candidates"] = data.draw(st.lists(st.sampled_from(ITEMS), max_size=5))
            case.body = body

    with serving(shop, shop.ranker, tmp_path, token=TOKEN) as (client, service):
        wait_ready(client)
        run = fuzz(
            str(client.base_url),
            client.get("/openapi.json").json(),
            examples=examples(backend, embedded=100, kafka=30),
            token=TOKEN,
            adjust={"POST /v1/rank": known, "POST /v1/predict": known},
        )
        assert not run.server_errors(), run.server_errors()[:5]
        answered = {
            response.json()["decision_id"]
            for label, _, response in run.answers
            if label in ("POST /v1/rank", "POST /v1/predict") and response.status_code == 200
        }
        assert answered, run.statuses
        unknown = sum(  # a 404 of these routes is an unknown entity: recorded, as a refusal
            1
            for label, _, response in run.answers
            if label in ("POST /v1/rank", "POST /v1/predict") and response.status_code == 404
        )
        written = decisions(shop.log, service, len(answered) + unknown)
        consumer = shop.log.consumer(None, [service.decisions.topic.name], reset="earliest")
        extra = consume_all(consumer, 1, timeout=1)
        consumer.close()
    kept = [d for d in written if not d["error"]]
    assert {d["decision_id"] for d in kept} == answered
    assert [d["error"][:5] for d in written if d["error"]] == ["404: "] * unknown
    # no decision of another refused request, none twice
    assert len(written) == len(answered) + unknown
    assert len(extra) <= len(written)
