"""`loopline cdc add --connect-url` on Kafka: Debezium captures the table, features read it.

Runs against the real broker and the Kafka Connect worker that
`scripts/test.sh` starts (`scripts/connect.sh`, LOOPLINE_CONNECT_URL); when
the worker is not reachable this fails, it is never skipped. The copy and
the changes reach the topic (the latest row per key equals the table), an
update shows through `loopline features get` and the /v1/predict answer of
a real `loopline serve` (a model on that feature) within 10 s of its commit
(measured here), and a delete brings back the feature's default, and the
score the model gives it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from cdc.predicting import KEY, publish, score, serve, train, waits
from loopline.cli import cli
from loopline.features.sources import SourceReader, key_entity
from loopline.log import open_log
from support import read_all

APP = """
from loopline import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer

app = App("{name}", features=FeatureSet(tables=[Table("{topic}", Entity("member", key="id"), [
    TableFeature("score", "score", default=-1)])]),
    models=[Model("{name}", trainer=LightGBMTrainer, entity="member", features=["score"])])
"""


def _rows(log_url: str, topic: str) -> dict[str, dict]:
    """The table the topic leaves, read as table features read it."""
    log = open_log(log_url)
    try:
        records = read_all(log, topic)
    finally:
        log.close()
    reader = SourceReader(None)
    state: dict[str, dict] = {}
    for r in records:
        key = key_entity(r.key.decode(), "id")
        row = reader.fields(topic, r.value)
        if row is None:
            state.pop(key, None)
        else:
            state[key] = row
    return state


def _get(log_url: str, module: str, key: str) -> dict:
    got = CliRunner().invoke(cli, ["--log", log_url, "features", "get", module, key])
    assert got.exit_code == 0, got.output
    return json.loads(got.stdout.splitlines()[-1])


def test_debezium_captures_the_table_and_serves_an_update_within_10_s(
    members, connect_url, tmp_path, monkeypatch
):
    log_url = "kafka://" + os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    topic = members.table + "_dbz"
    members.insert(500)
    runner = CliRunner()
    args = ["--log", log_url, "cdc"]
    added = runner.invoke(
        cli,
        [
            *args,
            "add",
            members.table,
            members.url,
            "--table",
            members.table,
            "--topic",
            topic,
            "--connect-url",
            connect_url,
        ],
    )
    assert added.exit_code == 0, added.output
    name, module = members.table.replace("_", "-"), f"dbzapp_{members.table}"
    (tmp_path / f"{module}.py").write_text(APP.format(name=name, topic=topic))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    model = train()
    log = open_log(log_url)
    try:
        publish(log, name, model)
    finally:
        log.close()
    features = subprocess.Popen(
        [sys.executable, "-m", "loopline", "--log", log_url, "features", "run", f"{module}:app"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        members.random_changes(random.Random(3), 300, keys=550)
        deadline = time.monotonic() + 90
        while _rows(log_url, topic) != members.state():
            assert time.monotonic() < deadline, "Debezium's topic never matched the table"
            time.sleep(1)
        status = runner.invoke(cli, [*args, "status", members.table])
        assert "connector RUNNING" in status.output, status.output

        state = members.state()
        # a key whose model answer moves when its score becomes 4242
        key = next(k for k in sorted(state) if (state[k]["score"] or 999) < 200)
        deadline = time.monotonic() + 60
        while _get(log_url, module, key)["score"] != state[key]["score"]:
            assert time.monotonic() < deadline, "the features processor never caught up"
            time.sleep(0.5)
        values = (state[key]["score"], 4242, -1)
        expected = dict(zip(values, model.predict([{"score": v} for v in values]), strict=True))
        assert expected[4242] - max(expected[values[0]], expected[-1]) > 0.5
        with serve(log_url, f"{module}:app", name, tmp_path / "serve") as client:
            assert score(client, key) == pytest.approx(expected[values[0]], abs=1e-9)
            members.conn.execute(
                f"UPDATE {members.table} SET score = 4242 WHERE id = %s", (int(key),)
            )
            seen = waits(
                {
                    "get": lambda: _get(log_url, module, key)["score"] == 4242,
                    "predict": lambda: abs(score(client, key) - expected[4242]) < 1e-9,
                },
                since=time.monotonic(),
                limit=30,
            )
            print(
                f"Debezium: commit to `features get` {seen['get']:.2f} s, "
                f"to /v1/predict {seen['predict']:.2f} s"
            )
            assert seen["get"] < 10.0 and seen["predict"] < 10.0, seen

            members.conn.execute(f"DELETE FROM {members.table} WHERE id = %s", (int(key),))
            seen = waits(
                {
                    "get": lambda: _get(log_url, module, key)["score"] == -1,
                    "predict": lambda: abs(score(client, key) - expected[-1]) < 1e-9,
                },
                since=time.monotonic(),
                limit=10.0,
            )
            print(
                f"Debezium: delete to the default: `features get` {seen['get']:.2f} s, "
                f"/v1/predict {seen['predict']:.2f} s"
            )
    finally:
        features.terminate()
        features.communicate(timeout=30)
        removed = runner.invoke(cli, [*args, "remove", members.table])
        assert removed.exit_code == 0, removed.output
