"""Table features fed by a CDC topic: online within 2 s of a commit, offline as of each instant.

- `loopline cdc run` and `loopline features run` follow the table on the
  embedded log; an UPDATE in PostgreSQL must show through `loopline features
  get` and through the /v1/predict answer of a real `loopline serve` (a model
  on that feature) within 2 s of its commit (measured here), and a DELETE
  must bring back the feature's default, and the score the model gives it.
- `dataset build` over the CDC topic must give, for every spine row, the
  table's row as it was committed at that instant, reconstructed from the
  change history a trigger kept (with each change's commit time).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cdc.predicting import KEY, publish, score, serve, train, waits
from loopline.app import App
from loopline.cli import cli
from loopline.connectors.cdc import read_cdc_progress, run_cdc
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.features.offline.datasets import build_dataset
from loopline.log import open_log

APP = """
from loopline import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer

app = App("{name}", features=FeatureSet(tables=[Table("{topic}", Entity("member", key="id"), [
    TableFeature("score", "score", default=-1), TableFeature("country", "country", default="??")])]),
    models=[Model("{name}", trainer=LightGBMTrainer, entity="member", features=["score"])])
"""


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "loopline", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def _get(log_url: str, module: str, key: str) -> dict:
    got = CliRunner().invoke(cli, ["--log", log_url, "features", "get", module, key])
    assert got.exit_code == 0, got.output
    return json.loads(got.stdout.splitlines()[-1])


def test_an_update_is_served_within_2_seconds_and_a_delete_gives_the_default(
    members, tmp_path, monkeypatch
):
    log_url = f"embedded:{tmp_path / 'log'}"
    members.insert(100)
    name, module = members.table.replace("_", "-"), f"cdcapp_{members.table}"
    (tmp_path / f"{module}.py").write_text(APP.format(name=name, topic=members.table + "_cdc"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    model = train()
    log = open_log(log_url)
    try:
        publish(log, name, model)
    finally:
        log.close()
    runner = CliRunner()
    added = runner.invoke(
        cli, ["--log", log_url, "cdc", "add", members.table, members.url, "--table", members.table]
    )
    assert added.exit_code == 0, added.output
    ran = runner.invoke(cli, ["--log", log_url, "cdc", "run", members.table, "--until-idle"])
    assert ran.exit_code == 0, ran.output
    processes = [
        _start("--log", log_url, "cdc", "run", members.table),
        _start("--log", log_url, "features", "run", f"{module}:app"),
    ]
    try:
        deadline = time.monotonic() + 60
        while _get(log_url, module, "42")["score"] != 42 % 97:
            assert time.monotonic() < deadline, "the copied rows never reached the store"
            time.sleep(0.2)
        with serve(log_url, f"{module}:app", name, tmp_path / "serve") as client:
            values = (42, 500, 7, 502, -1)
            expected = dict(zip(values, model.predict([{"score": v} for v in values]), strict=True))
            assert min(expected[500], expected[502]) - max(expected[42], expected[-1]) > 0.5
            assert score(client, "42") == pytest.approx(expected[42], abs=1e-9)

            waits_get, waits_predict = [], []
            for value in (500, 7, 502):  # each crosses 250: the model's answer moves
                members.conn.execute(
                    f"UPDATE {members.table} SET score = %s WHERE id = 42", (value,)
                )
                seen = waits(
                    {
                        "get": lambda v=value: _get(log_url, module, "42")["score"] == v,
                        "predict": lambda v=value: abs(score(client, "42") - expected[v]) < 1e-9,
                    },
                    since=time.monotonic(),
                    limit=10,
                )
                waits_get.append(seen["get"])
                waits_predict.append(seen["predict"])
            print(f"commit to `features get`: {', '.join(f'{w:.2f}' for w in waits_get)} s")
            print(f"commit to /v1/predict: {', '.join(f'{w:.2f}' for w in waits_predict)} s")
            assert max(waits_get) < 2.0, waits_get
            assert max(waits_predict) < 2.0, waits_predict

            members.conn.execute(f"DELETE FROM {members.table} WHERE id = 42")
            default = {"entity": "42", "score": -1, "country": "??"}
            seen = waits(
                {
                    "get": lambda: _get(log_url, module, "42") == default,
                    "predict": lambda: abs(score(client, "42") - expected[-1]) < 1e-9,
                },
                since=time.monotonic(),
                limit=2.0,
            )
            print(f"delete to the default: `features get` {seen['get']:.2f} s, "
                  f"/v1/predict {seen['predict']:.2f} s")  # fmt: skip
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            _, err = process.communicate(timeout=30)
            assert process.returncode in (0, -15), err.decode()


def test_dataset_build_gives_the_row_as_committed_at_each_instant(log, members, tmp_path):
    members.insert(200)
    members.forget_history()
    stop = threading.Event()
    thread = threading.Thread(
        target=run_cdc, args=(log, members.source), kwargs={"stop": stop, "poll_interval": 0.02}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if read_cdc_progress(log, members.source).snapshot_done:
                    break
            except Exception:  # the topic is being created
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)
        initial = members.state()
        rng = random.Random(2019)
        for _ in range(120):  # commits spread over time, so instants fall between them
            members.random_changes(rng, rng.randint(1, 5), keys=220, per_tx=5)
            time.sleep(0.005)
    finally:
        stop.set()
        thread.join(60)
    run_cdc(log, members.source, until_idle=True)

    history = members.history()
    first, last = history[0][4], history[-1][4]
    spine_rows = []
    for _ in range(400):
        spine_rows.append({"id": str(rng.randint(1, 220)), "at": rng.randint(first - 5, last + 5)})
    spine = tmp_path / "spine.jsonl"
    spine.write_text("".join(json.dumps(r) + "\n" for r in spine_rows))

    member = Entity("member", key="id")
    features = [TableFeature("score", "score", default=-1), TableFeature("country", "country")]
    app = App(
        members.table.replace("_", "-"),
        features=FeatureSet(tables=[Table(members.source.topic, member, features)]),
    )
    out = tmp_path / "train.parquet"
    build_dataset(log, app, spine, out)
    rows = pq.read_table(out).to_pylist()

    def as_of(key: str, at: int) -> tuple:
        row = initial.get(key)
        for _, _, changed, after, committed in history:
            if str(changed) == key and committed <= at:
                row = after
        if row is None:
            return (-1, None)
        return (-1 if row["score"] is None else row["score"], row["country"])

    mismatches = [
        (r["id"], r["at"], (r["score"], r["country"]), as_of(r["id"], r["at"]))
        for r in rows
        if (r["score"], r["country"]) != as_of(r["id"], r["at"])
    ]
    assert len(rows) == 400 and not mismatches, mismatches[:10]
