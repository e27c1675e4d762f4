"""A real Kafka outage: the broker is stopped while the service answers, then started again.

The suite's shared broker cannot be stopped under the other tests, so this
test starts a broker of its own (``scripts/kafka.sh`` on free ports, state in
the test's directory), stops it mid-traffic, and resumes it on the same
storage. The service answers every request throughout; the decisions made
during the outage wait in the durable backlog (also across a restart of the
service while the broker is down) and reach the topic when the broker is
back: every decision exactly once, none lost.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from loopline.http.server import running
from loopline.log.kafka.log import KafkaLog
from loopline.serving.backlog import Backlog
from loopline.serving.http import create_app
from loopline.serving.service import PredictionService
from serving.helpers import KEY, MEMBERS, fit, make_shop, publish, wait_ready
from support import consume_all

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"


def _free_port_pair() -> int:
    for _ in range(100):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two consecutive free ports on 127.0.0.1")


class Broker:
    """A private single-node broker run by scripts/kafka.sh."""

    def __init__(self, state: Path) -> None:
        self.port = _free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LOOPLINE_KAFKA_PORT": str(self.port),
            "LOOPLINE_KAFKA_STATE": str(state),
        }

    def __call__(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(SCRIPT), command], env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"kafka.sh {command} failed:\n{done.stderr[-3000:]}"

    def freeze(self) -> None:
        """Stop the broker's process without ending it (SIGSTOP): its connections stay open
        and nothing answers on them, as in a long pause or a network partition."""
        os.kill(self._pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen broker go on (SIGCONT): it answers what waited, in order."""
        os.kill(self._pid(), signal.SIGCONT)

    def _pid(self) -> int:
        return int((Path(self.env["LOOPLINE_KAFKA_STATE"]) / "kafka.pid").read_text())


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path / "kafka")
    broker("start")
    yield broker
    broker("stop")


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s")
        time.sleep(0.1)


def test_decisions_survive_a_kafka_outage_and_a_restart_exactly_once(
    broker, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    log = KafkaLog(broker.bootstrap, timeout=5)
    shop = make_shop(log)
    publish(shop, shop.scorer, fit(["age"]))
    state = tmp_path / "serve-state"
    answered: list[str] = []

    def service() -> PredictionService:
        return PredictionService(
            log, shop.app, shop.schemas, state_dir=state, model=shop.scorer, refresh_interval=0.2
        )

    def ask(client: httpx.Client, n: int) -> None:
        for i in range(n):
            answer = client.post("/v1/predict", json={"entity": MEMBERS[i % len(MEMBERS)]})
            assert answer.status_code == 200, answer.text
            answered.append(answer.json()["decision_id"])

    first = service()
    first.decisions.retry_interval = 0.2
    first.decisions.flush_timeout = 2.0
    with running(create_app(first)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        ask(client, 20)
        assert first.decisions.flush(60)
        broker("stop")
        ask(client, 30)  # the service keeps answering while the log is down
        _wait(lambda: len(first.decisions.backlog) >= 30, 60, "in the backlog")
        assert "loopline_decisions_backlog" in client.get("/metrics").text
    first.close()  # a restart while the broker is still down: the backlog stays on disk
    backlog = Backlog(state / "decisions-backlog.db")
    assert len(backlog) == 30
    backlog.close()

    broker("resume")
    second = service()
    second.decisions.retry_interval = 0.2
    with running(create_app(second)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        ask(client, 10)
        assert second.decisions.flush(90)
    second.close()

    consumer = log.consumer(None, [f"{shop.app.name}.decisions"], reset="earliest")
    try:
        records = consume_all(consumer, 60, timeout=60)
        time.sleep(1)
        records += consumer.poll(1000, timeout=1)  # nothing more may come
    finally:
        consumer.close()
    ids = collections.Counter(json.loads(r.value)["decision_id"] for r in records)
    assert sorted(ids) == sorted(answered) and len(answered) == 60
    assert set(ids.values()) == {1}, "a decision arrived more than once"
    shop.models.close()
    shop.schemas.close()
    log.close()
