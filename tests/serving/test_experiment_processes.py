"""Three real ``loopline serve`` processes and a restart agree on every unit's arm, on both backends.

Each unit (a context field, ``user``) is asked of every process; the arm
shows in the answer's version (control: the alias's v1, treatment: v2) and
in the decision each process records. Every process, the restarted one, and
the assignment function itself agree on every unit. (100,000 units through
the function alone, in several interpreters: tests/experiments/
test_assignment_acceptance.py.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loopline.experiments.assignment import assign
from loopline.experiments.records import Arm, Experiment
from loopline.experiments.registry import ExperimentRegistry
from serving.helpers import KEY, SRC, app_source, fit, make_shop, publish
from support import consume_all, unique

USERS = [f"user-{i}" for i in range(300)]


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``loopline serve`` process on a port of its own."""

    def __init__(self, log_url: str, model: str, tmp: Path, n: int, port: int | None = None):
        self.port = port or free_port()
        self.output = tmp / f"serve-{n}.log"
        command = [
            sys.executable, "-m", "loopline", "--log", log_url, "serve", "servedapp:app",
            "--model", model, "--port", str(self.port), "--state-dir", str(tmp / f"state-{n}"),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp), SRC])}
        env["LOOPLINE_SIGNING_KEY"] = KEY
        with self.output.open("w") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"loopline serve exited:\n{self.output.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"loopline serve was not ready in {timeout} s")

    def versions(self) -> dict[str, int]:
        """The version that answered each user, and the decision ids."""
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            out = {}
            for user in USERS:
                body = {"entity": "m-1", "context": {"user": user}}
                answer = client.post("/v1/predict", json=body)
                assert answer.status_code == 200, answer.text
                out[user] = answer.json()["version"]
            return out

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_three_serve_processes_and_a_restart_agree_on_every_units_arm(
    shop, log_url, tmp_path
) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    data, format = fit(["age"], flip=True).save()
    shop.models.publish(shop.scorer, data, format=format, trainer="t", features=[("age", "float")])
    registry = ExperimentRegistry(shop.log)
    arms = (
        Arm("control", alias="production", weight=0.7, control=True),
        Arm("flipped", version=2, weight=0.3),
    )
    spec = Experiment(name=unique("ab"), model=shop.scorer, arms=arms, unit="context.user")
    experiment = registry.start(spec)
    registry.close()
    expected = {u: 2 if assign(experiment, u).arm.name == "flipped" else 1 for u in USERS}
    (tmp_path / "servedapp.py").write_text(app_source(shop))
    servers = [Server(log_url, shop.scorer, tmp_path, n) for n in range(3)]
    try:
        for server in servers:
            server.wait_ready()
        answers = [server.versions() for server in servers]
        servers[0].stop()
        servers[0] = Server(log_url, shop.scorer, tmp_path, 3, port=servers[0].port)
        servers[0].wait_ready()
        answers.append(servers[0].versions())
    finally:
        for server in servers:
            server.stop()
    for answered in answers:
        assert answered == expected
    assert 0.2 < list(expected.values()).count(2) / len(USERS) < 0.4
    consumer = shop.log.consumer(None, [f"{shop.app.name}.decisions"], reset="earliest")
    try:
        recorded = [json.loads(r.value) for r in consume_all(consumer, 4 * len(USERS), 90)]
    finally:
        consumer.close()
    assert len(recorded) == 4 * len(USERS)
    for d in recorded:
        user = d["context"]["user"]
        arm = "flipped" if expected[user] == 2 else "control"
        assert (d["experiment"], d["arm"], d["model_version"]) == (
            experiment.name,
            arm,
            expected[user],
        )
        assert d["arm_probability"] == (0.3 if arm == "flipped" else 0.7)
