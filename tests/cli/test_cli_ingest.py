"""`loopline ingest`, `loopline ingest-server` and `loopline schema-registry`, as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from loopline.cli import cli

CLICK = {
    "type": "record",
    "name": "Click",
    "fields": [{"name": "member_id", "type": "string"}, {"name": "item", "type": "long"}],
}


@pytest.fixture
def url(tmp_path) -> str:
    return f"embedded:{tmp_path / 'log'}"


def run(url: str, *args: str):
    return CliRunner().invoke(cli, ["--log", url, *args])


def bound_topic(url: str, tmp_path) -> None:
    schema = tmp_path / "click.avsc"
    schema.write_text(json.dumps(CLICK))
    assert run(url, "contracts", "register", "clicks", "--schema", str(schema)).exit_code == 0
    assert run(url, "topics", "create", "clicks", "--contract", "clicks").exit_code == 0


def test_ingest_counts_every_row_and_resumes_without_duplicates(url, tmp_path):
    bound_topic(url, tmp_path)
    data = tmp_path / "clicks.csv"
    data.write_text("member_id,item\nm1,1\nm2,two\nm3,3\n")
    first = run(url, "ingest", str(data), "--topic", "clicks", "--key", "member_id")
    assert first.exit_code == 0, first.output
    assert "read 3 rows: produced 2 to clicks, dead-lettered 1 to clicks.dlq" in first.stdout
    again = run(url, "ingest", str(data), "--topic", "clicks", "--key", "member_id")
    assert "3 rows already ingested earlier" in again.stdout
    consumed = run(url, "consume", "clicks", "--from-beginning", "--timeout", "1")
    assert [json.loads(x)["member_id"] for x in consumed.stdout.splitlines()] == ["m1", "m3"]
    letters = run(url, "dlq", "inspect", "clicks").stdout.splitlines()
    assert len(letters) == 1 and "row 2" in json.loads(letters[0])["reason"]


def test_a_csv_without_a_contract_is_ingested_as_text_with_a_warning(url, tmp_path):
    assert run(url, "topics", "create", "orders").exit_code == 0
    data = tmp_path / "orders.csv"
    data.write_text("member_id,amount\nm1,5.5\n")
    result = CliRunner().invoke(cli, ["--log", url, "ingest", str(data), "--topic", "orders"])
    assert result.exit_code == 0, result.output
    assert "produced 1 to orders" in result.stdout
    assert "warning: topic 'orders' has no contract" in result.stderr
    assert "'member_id', 'amount' was written as a string" in result.stderr
    assert "--contract orders" in result.stderr
    consumed = run(url, "consume", "orders", "--from-beginning", "--timeout", "1")
    assert json.loads(consumed.stdout) == {"member_id": "m1", "amount": "5.5"}
    # with a contract, no warning: the contract gives the cells their types
    bound_topic(url, tmp_path)
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("member_id,item\nm1,1\n")
    typed = CliRunner().invoke(cli, ["--log", url, "ingest", str(clicks), "--topic", "clicks"])
    assert typed.exit_code == 0 and "warning" not in typed.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopline", "--log", url, *args, "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/openapi.json", timeout=1)
            return proc, base
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def test_ingest_server_with_a_token(url, tmp_path):
    bound_topic(url, tmp_path)
    proc, base = _start(url, "ingest-server", env={"LOOPLINE_INGEST_TOKEN": "s3cret-token-0123456"})
    try:
        endpoint = base + "/v1/topics/clicks/records?key=member_id"
        body = [{"member_id": "m1", "item": 1}, {"member_id": "m2", "item": 2}]
        assert httpx.post(endpoint, json=body).status_code == 401
        auth = {"Authorization": "Bearer s3cret-token-0123456"}
        ok = httpx.post(endpoint, json=body, headers=auth)
        assert ok.status_code == 200 and ok.json()["produced"] == 2
        bad = httpx.post(endpoint, json=[*body, {"member_id": "m3", "item": "x"}], headers=auth)
        assert bad.status_code == 400
        assert [r["index"] for r in bad.json()["records"]] == [2]
        assert "/v1/topics/{topic}/records" in httpx.get(base + "/openapi.json").json()["paths"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"s3cret-token-0123456" not in err
    consumed = run(url, "consume", "clicks", "--from-beginning", "--timeout", "1")
    assert len(consumed.stdout.splitlines()) == 2  # the refused request wrote nothing


def test_schema_registry_serves_the_logs_contracts(url, tmp_path):
    bound_topic(url, tmp_path)
    proc, base = _start(url, "schema-registry")
    try:
        assert httpx.get(base + "/subjects").json() == ["clicks"]
        latest = httpx.get(base + "/subjects/clicks/versions/latest").json()
        assert latest["version"] == 1 and json.loads(latest["schema"]) == CLICK
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
