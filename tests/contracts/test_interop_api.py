"""The Schema Registry REST API's contract: answers and error shapes as Confluent's clients expect."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from loopline.contracts import LogRegistry
from loopline.contracts.registry_http import create_registry_app
from loopline.log import Log

V1 = {"type": "record", "name": "Click", "fields": [{"name": "item", "type": "long"}]}
V2 = {
    "type": "record",
    "name": "Click",
    "fields": [
        {"name": "item", "type": "long"},
        {"name": "country", "type": ["null", "string"], "default": None},
    ],
}
BREAKING = {"type": "record", "name": "Click", "fields": [{"name": "item", "type": "string"}]}
SR_JSON = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def body(schema: object, **extra: object) -> dict:
    return {"schema": json.dumps(schema), **extra}


@pytest.fixture
def api(log: Log):
    registry = LogRegistry(log)
    yield TestClient(create_registry_app(registry))
    registry.close()


@pytest.fixture
def subject(new_topic) -> str:
    return f"{new_topic()}-value"


def error(answer) -> tuple[int, int]:
    return answer.status_code, answer.json()["error_code"]


def test_register_read_and_look_up(api, subject) -> None:
    first = api.post(f"/subjects/{subject}/versions?normalize=False", json=body(V1))
    assert first.status_code == 200
    schema_id = first.json()["id"]
    assert first.json() == {"id": schema_id}
    # The same schema, spelled differently, is the same version.
    spelled = json.dumps(V1, indent=2)
    again = api.post(f"/subjects/{subject}/versions", json={"schema": spelled}, headers=SR_JSON)
    assert again.json() == {"id": schema_id}
    assert api.get(f"/schemas/ids/{schema_id}?subject={subject}").json() == {
        "schema": json.dumps(V1)
    }
    second = api.post(f"/subjects/{subject}/versions", json=body(V2, schemaType="AVRO")).json()
    assert api.get(f"/subjects/{subject}/versions?deleted=true").json() == [1, 2]
    for version in ("latest", "-1", "2"):
        got = api.get(f"/subjects/{subject}/versions/{version}?deleted=True").json()
        assert got == {
            "subject": subject,
            "id": second["id"],
            "version": 2,
            "schema": json.dumps(V2),
        }
    found = api.post(f"/subjects/{subject}?normalize=False&deleted=True", json=body(V1)).json()
    assert (found["version"], found["id"]) == (1, schema_id)
    assert subject in api.get("/subjects?deleted=False&offset=0&limit=-1").json()
    assert api.get(f"/subjects?subjectPrefix={subject}").json() == [subject]
    # Kafka is shared by all tests: other subjects may use the same schema (and id).
    uses = api.get(f"/schemas/ids/{schema_id}/versions").json()
    assert {"subject": subject, "version": 1} in uses
    assert subject in api.get(f"/schemas/ids/{schema_id}/subjects").json()
    assert api.get("/schemas/types").json() == ["AVRO"]


def test_not_found_errors_have_confluents_codes(api, subject) -> None:
    assert error(api.get("/schemas/ids/999")) == (404, 40403)
    assert error(api.get("/schemas/ids/not-a-number")) == (404, 40403)
    assert error(api.get(f"/subjects/{subject}/versions")) == (404, 40401)
    assert error(api.post(f"/subjects/{subject}", json=body(V1))) == (404, 40401)
    api.post(f"/subjects/{subject}/versions", json=body(V1))
    assert error(api.get(f"/subjects/{subject}/versions/7")) == (404, 40402)
    assert error(api.get(f"/subjects/{subject}/versions/one")) == (422, 42202)
    assert error(api.post(f"/subjects/{subject}", json=body(V2))) == (404, 40403)
    assert error(api.get("/no/such/route")) == (404, 404)


@pytest.mark.parametrize(
    "payload",
    [
        {"schema": "{not json"},
        {"schema": json.dumps({"type": "record", "name": "X"})},
        {"schema": json.dumps(V1), "schemaType": "PROTOBUF"},
        {"schema": json.dumps(V1), "references": [{"name": "a", "subject": "b", "version": 1}]},
        {"schma": "typo"},
        [1, 2],
    ],
)
def test_invalid_schemas_are_42201(api, subject, payload) -> None:
    answer = api.post(f"/subjects/{subject}/versions", json=payload)
    assert error(answer) == (422, 42201)
    assert answer.json()["message"]


def test_incompatible_is_409_and_compatibility_can_be_tested(api, subject) -> None:
    api.post(f"/subjects/{subject}/versions", json=body(V1))
    refused = api.post(f"/subjects/{subject}/versions", json=body(BREAKING))
    assert error(refused) == (409, 409)
    assert "not backward compatible with v1" in refused.json()["message"]
    latest = f"/compatibility/subjects/{subject}/versions/latest"
    assert api.post(latest, json=body(V2)).json() == {"is_compatible": True}
    verbose = api.post(f"{latest}?normalize=False&verbose=True", json=body(BREAKING)).json()
    assert verbose["is_compatible"] is False
    assert any("item" in m for m in verbose["messages"])
    everything = f"/compatibility/subjects/{subject}/versions?verbose=False"
    assert api.post(everything, json=body(BREAKING)).json() == {"is_compatible": False}
    assert api.post("/compatibility/subjects/new-one/versions", json=body(V1)).json() == {
        "is_compatible": True
    }


def test_compatibility_levels(api, subject) -> None:
    assert api.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert api.get(f"/config/{subject}").json() == {"compatibilityLevel": "BACKWARD"}
    answer = api.put(f"/config/{subject}", json={"compatibility": "full_transitive"})
    assert answer.json() == {"compatibility": "FULL_TRANSITIVE"}
    assert api.get(f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert api.put(f"/config/{subject}", json={"compatibilityLevel": "NONE"}).status_code == 200
    api.post(f"/subjects/{subject}/versions", json=body(V1))
    assert api.post(f"/subjects/{subject}/versions", json=body(BREAKING)).status_code == 200
    assert error(api.put(f"/config/{subject}", json={"compatibility": "SIDEWAYS"})) == (
        422,
        42203,
    )
    assert error(api.put(f"/config/{subject}", content=b"junk")) == (422, 42203)
    assert error(api.put("/config", json={"compatibility": "NONE"})) == (422, 42205)


def test_the_registry_is_append_only(api, subject) -> None:
    api.post(f"/subjects/{subject}/versions", json=body(V1))
    assert error(api.delete(f"/subjects/{subject}")) == (422, 42205)
    assert error(api.delete(f"/subjects/{subject}/versions/1")) == (422, 42205)
    assert api.get(f"/subjects/{subject}/versions").json() == [1]


def test_healthz_answers_without_the_token_that_guards_the_rest(log: Log) -> None:
    registry = LogRegistry(log)
    try:
        guarded = TestClient(create_registry_app(registry, token="0123456789abcdef0123"))
        assert guarded.get("/healthz").json() == {"status": "ok"}
        assert guarded.get("/subjects").status_code == 401
        answer = guarded.get("/subjects", headers={"Authorization": "Bearer 0123456789abcdef0123"})
        assert answer.status_code == 200 and isinstance(answer.json(), list)
    finally:
        registry.close()
