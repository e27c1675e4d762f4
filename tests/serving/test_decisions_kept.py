"""Every answered decision reaches the decisions topic, once: log faults, kill -9, oversized records.

Each test counts the decision ids the service answered with against the ids
on the topic (what the outcomes joiner and every consumer will see).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest

from loopline.log import Log
from loopline.serving.backlog import Backlog
from loopline.serving.http import create_app
from loopline.serving.service import PredictionService
from loopline.stream.deadletters import REASON
from serving.helpers import (
    KEY,
    MEMBERS,
    SRC,
    app_source,
    fit,
    make_shop,
    publish,
    serving,
    wait_ready,
)
from support import consume_all


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


def topic_ids(log: Log, topic: str, expected: int) -> collections.Counter[str]:
    """Decision ids on `topic` (all of them: once `expected` arrived, a little longer)."""
    consumer = log.consumer(None, [topic], reset="earliest")
    try:
        records = consume_all(consumer, expected, timeout=90)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # nothing more may come
            records += consumer.poll(1000, timeout=0.5)
    finally:
        consumer.close()
    return collections.Counter(json.loads(r.value)["decision_id"] for r in records)


def assert_each_once(answered: list[str], on_topic: collections.Counter[str]) -> None:
    lost = set(answered) - set(on_topic)
    assert not lost, f"{len(lost)} of {len(answered)} answered decisions never reached the topic"
    twice = {i: n for i, n in on_topic.items() if n > 1}
    assert not twice, f"{len(twice)} decisions reached the topic more than once"


@contextmanager
def predicting(url: str, clients: int = 2) -> Iterator[list[str]]:
    """`clients` threads sending predicts until the block ends; the decision ids answered."""
    stop = threading.Event()
    answered: list[str] = []

    def load(n: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            i = n
            while not stop.is_set():
                try:
                    answer = client.post("/v1/predict", json={"entity": MEMBERS[i % len(MEMBERS)]})
                except httpx.TransportError:
                    return  # the server is gone (killed)
                if answer.status_code == 200:
                    answered.append(answer.json()["decision_id"])
                i += 1

    threads = [threading.Thread(target=load, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield answered
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


@contextmanager
def unwritable(files: list[str]) -> Iterator[None]:
    """`files` immutable (even for root) for the block."""
    subprocess.run(["chattr", "+i", *files], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *files], check=True)


def log_files(log: Log) -> list[str]:
    """The embedded log's database files."""
    return [str(Path(log.path) / name) for name in ("log.db", "log.db-wal")]  # type: ignore[attr-defined]


def read_only(log: Log) -> AbstractContextManager[None]:
    """The embedded log's database files immutable (even for root): every write fails."""
    return unwritable(log_files(log))


@pytest.mark.parametrize("backend", ["embedded"])  # a fault of the embedded log's files
def test_decisions_are_kept_when_the_log_fails_mid_batch(log, shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        service.decisions.retry_interval = 0.2
        service.decisions.stuck_after = 1.0
        with predicting(str(client.base_url)) as answered:
            time.sleep(0.5)
            with read_only(log):
                before = len(answered)
                time.sleep(3)
                during = len(answered) - before
                unready = client.get("/readyz")
            time.sleep(1)
        assert during > 0
        assert service.decisions.journaled > 0  # what the log could not take waited there
        assert unready.status_code == 503
        assert "decisions do not reach the log" in " ".join(unready.json()["waiting_for"])
        assert service.decisions.flush(60)
        assert service.decisions.dropped == 0
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
    assert_each_once(answered, topic_ids(log, service.decisions.topic.name, len(answered)))
    assert f'loopline_decisions_dropped_total{{app="{shop.app.name}"}} 0.0' in metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            logs = sorted(
                Path(proc.args[proc.args.index("--state-dir") + 1]).parent.glob("serve-*.log")
            )
            said = logs[-1].read_text()[-3000:] if logs else ""
            raise AssertionError(f"loopline serve exited ({proc.returncode}):\n{said}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"loopline serve was not ready in {timeout} s")


def test_answered_decisions_survive_kill_9_of_serve(shop, log_url, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    (tmp_path / "servedapp.py").write_text(app_source(shop))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "loopline", "--log", log_url, "serve", "servedapp:app",
        "--model", shop.scorer, "--port", str(port), "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC]),
        "LOOPLINE_SIGNING_KEY": KEY,
    }

    def start(n: int) -> subprocess.Popen:
        out = open(tmp_path / f"serve-{n}.log", "w")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)

    first = start(1)
    try:
        _wait_ready(url, first)
        with predicting(url) as answered:
            time.sleep(1.0)
            first.kill()
            first.wait(30)
        assert len(answered) > 50
    finally:
        first.kill()
    second = start(2)
    try:
        _wait_ready(url, second)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    on_topic = topic_ids(shop.log, f"{shop.app.name}.decisions", len(answered))
    assert_each_once(answered, on_topic)


def _huge_rank(client: httpx.Client) -> httpx.Response:
    # 1,000 candidates with 1,000-character ids: a ~1 MB body (under every request limit),
    # a ~2 MB decision (over Kafka's 1 MB default for a record).
    candidates = [f"{i:04d}" + "x" * 996 for i in range(1000)]
    return client.post("/v1/rank", json={"entity": "m-1", "candidates": candidates, "k": 1})


def test_a_decision_too_large_for_the_topic_is_refused_up_front(shop, tmp_path) -> None:
    publish(shop, shop.ranker, fit(["age", "price"]))
    with serving(shop, shop.ranker, tmp_path) as (client, service):
        wait_ready(client)
        huge = _huge_rank(client)
        assert huge.status_code == 413, huge.text
        assert "max.message.bytes" in huge.json()["error"]
        after = [
            client.post("/v1/rank", json={"entity": "m-2", "candidates": ["i-1", "i-2"]})
            for _ in range(5)
        ]
        assert [a.status_code for a in after] == [200] * 5
        assert service.decisions.flush(30)
        assert client.get("/readyz").status_code == 200
    on_topic = topic_ids(shop.log, service.decisions.topic.name, 5)
    assert sorted(on_topic) == sorted(a.json()["decision_id"] for a in after)


def test_a_waiting_decision_the_log_will_never_take_is_dead_lettered(shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    state = tmp_path / "state"
    backlog = Backlog(state / "decisions-backlog.db")  # left by an earlier run
    oversized = json.dumps({"decision_id": "oversized", "padding": "x" * 2_000_000}).encode()
    backlog.append([(b"m-1", oversized, int(time.time() * 1000))])
    backlog.close()
    service = PredictionService(
        shop.log, shop.app, shop.schemas, state_dir=state, model=shop.scorer, refresh_interval=0.1
    )
    service.decisions.retry_interval = 0.1
    from loopline.http.server import running

    with running(create_app(service)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        answered = [
            client.post("/v1/predict", json={"entity": "m-2"}).json()["decision_id"]
            for _ in range(5)
        ]
        assert service.decisions.flush(30), "the decision log is stuck behind one record"
        assert service.decisions.dropped == 1
    topic = service.decisions.topic.name
    assert sorted(topic_ids(shop.log, topic, 5)) == sorted(answered)
    consumer = shop.log.consumer(None, [topic + ".dlq"], reset="earliest")
    try:
        [letter] = consume_all(consumer, 1)
    finally:
        consumer.close()
    reason = dict(letter.headers)[REASON].decode()
    assert "decision oversized" in reason and "max.message.bytes" in reason


def test_a_local_log_takes_decisions_without_the_journal(log, shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        answers = [
            client.post("/v1/predict", json={"entity": MEMBERS[i % len(MEMBERS)]})
            for i in range(20)
        ]
        assert [a.status_code for a in answers] == [200] * 20
        assert service.decisions.flush(30)
        journaled = service.decisions.journaled
    # the embedded log is as durable as the journal: its commits are what answers wait for
    assert journaled == (0 if log.local else 20)
    on_topic = topic_ids(shop.log, service.decisions.topic.name, 20)
    assert_each_once([a.json()["decision_id"] for a in answers], on_topic)


def test_an_answer_whose_decision_cannot_be_kept_is_a_503(log, shop, tmp_path) -> None:
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        wait_ready(client)
        first = client.post("/v1/predict", json={"entity": "m-1"})
        assert first.status_code == 200
        journal = service.decisions.backlog.path
        files = [str(journal), f"{journal}-wal"]
        if log.local:  # the decision goes to the log first, the journal if the log fails
            files += log_files(log)
        with unwritable(files):
            refused = client.post("/v1/predict", json={"entity": "m-1"})
            unready = client.get("/readyz").json()["waiting_for"]
        assert refused.status_code == 503, refused.text
        assert "could not be recorded" in refused.json()["error"]
        assert any("decision journal" in w for w in unready)
        again = client.post("/v1/predict", json={"entity": "m-2"})
        assert again.status_code == 200
        assert service.decisions.flush(30)
    on_topic = topic_ids(shop.log, service.decisions.topic.name, 2)
    assert sorted(on_topic) == sorted([first.json()["decision_id"], again.json()["decision_id"]])
