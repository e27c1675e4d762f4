"""The schema registry API behind a token and a body limit, as `loopline schema-registry` runs it."""

from __future__ import annotations

import json

import httpx
from servers import cli_server, free_port

from loopline.contracts import LogRegistry
from loopline.contracts.external import ConfluentRegistry
from loopline.log import open_log

TOKEN = "registry-token-0123456789"
V1 = {"type": "record", "name": "Click", "fields": [{"name": "item", "type": "long"}]}
BREAKING = {"type": "record", "name": "Click", "fields": [{"name": "item", "type": "string"}]}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_writes_need_the_token_and_nothing_changes_without_it(tmp_path) -> None:
    url_of_log = f"embedded:{tmp_path / 'log'}"
    port = free_port()
    args = ["--log", url_of_log, "schema-registry", "--port", str(port), "--token", TOKEN]
    with cli_server(*args, port=port) as (url, _), httpx.Client(base_url=url) as client:
        assert (
            client.post(
                "/subjects/clicks/versions", json={"schema": json.dumps(V1)}, headers=BEARER
            ).status_code
            == 200
        )
        # The attack of the issue: relax the level, then register a breaking schema.
        relax = client.put("/config/clicks", json={"compatibility": "NONE"})
        breaking = client.post("/subjects/clicks/versions", json={"schema": json.dumps(BREAKING)})
        assert (relax.status_code, breaking.status_code) == (401, 401)
        assert relax.headers["www-authenticate"].startswith("Bearer")
        assert relax.json()["error_code"] == 401  # Confluent's error shape
        # Reads are closed too unless --public-reads.
        assert client.get("/subjects").status_code == 401
        assert client.get("/config/clicks", headers=BEARER).json() == {
            "compatibilityLevel": "BACKWARD"
        }
        # A 20 MB body is refused before it is parsed.
        huge = client.post("/subjects/clicks/versions", content=b" " * 20_000_000, headers=BEARER)
        assert huge.status_code == 413
    log = open_log(url_of_log)
    registry = LogRegistry(log)
    assert registry.mode("clicks") == "backward"
    assert [v.schema for v in registry.versions("clicks")] == [V1]
    registry.close()
    log.close()


def test_public_reads_open_reads_only(tmp_path) -> None:
    port = free_port()
    args = ["--log", f"embedded:{tmp_path / 'log'}", "schema-registry", "--port", str(port)]
    args += ["--public-reads", "--max-body", "64KiB"]
    with cli_server(*args, port=port, env={"LOOPLINE_REGISTRY_TOKEN": TOKEN}) as (url, lines):
        with httpx.Client(base_url=url) as client:
            assert client.get("/subjects").json() == []
            assert client.get("/config").status_code == 200
            assert client.put("/config/x", json={"compatibility": "NONE"}).status_code == 401
            body = {"schema": json.dumps(V1)}
            assert client.post("/subjects/x/versions", json=body).status_code == 401
            # Lookups and compatibility checks only read: open too.
            assert client.post("/compatibility/subjects/x/versions", json=body).status_code == 200
            assert client.post("/subjects/x", json=body).json()["error_code"] == 40401
            big = client.post("/subjects/x/versions", content=b" " * 70_000, headers=BEARER)
            assert big.status_code == 413
        # Kafka tools pass credentials in the URL (basic auth): the token as the password.
        external = ConfluentRegistry(url.replace("http://", f"http://loopline:{TOKEN}@"))
        assert external.register("clicks-value", V1).version == 1
        external.close()
    [said] = [line for line in lines if "auth" in line]
    assert "bearer token required" in said and "reads (GET, lookups" in said
    assert TOKEN not in "\n".join(lines)
