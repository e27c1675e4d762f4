"""``loopline experiments run``: killed with kill -9 mid-run, another process goes on from the changelog."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from loopline.experiments.arm_state import read_statistics
from loopline.experiments.records import Arm, Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.stream import names
from support import KAFKA_CONFIG, unique


def _command(log_url: str, tmp_path, app: str, *args: str) -> list[str]:
    config = [f"--kafka-config={k}={v}" for k, v in KAFKA_CONFIG.items()]
    return [
        sys.executable,
        "-m",
        "loopline",
        "--log",
        log_url,
        *(config if log_url.startswith("kafka") else []),
        "experiments",
        "run",
        "watched:app",
        "--commit-interval",
        "0.1",
        "--interval",
        "0.2",
        *args,
    ]


def _feed(log, app: str, name: str, rng: random.Random, n: int) -> None:
    producer = log.producer()
    for _ in range(n):
        arm = rng.choice(["control", "v2"])
        label = float(rng.random() < (0.2 if arm == "control" else 0.5))
        example = {"label": label, "experiment": name, "arm": arm, "score": 0.3}
        producer.send(names.labelled(app), json.dumps(example).encode(), b"m")
    producer.flush()
    producer.close()


def _counted(log, app: str, name: str) -> int:
    return sum(s.n for s in read_statistics(log, app).get(name, {}).values())


def test_a_watcher_killed_with_kill_9_is_continued_by_another_process(log, log_url, tmp_path):
    app, name = unique("cli"), unique("ranker-cli")
    (tmp_path / "watched.py").write_text(f"from loopline.app import App\napp = App({app!r})\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    log.create_topic(names.labelled(app))  # as `loopline outcomes run` does
    registry = ExperimentRegistry(log)
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=name, arms=arms, policy="bandit", salt="c"))
    rng = random.Random(8)
    _feed(log, app, name, rng, 400)
    first = subprocess.Popen(
        _command(log_url, tmp_path, app),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while _counted(log, app, name) < 400 and time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.2)
        assert _counted(log, app, name) == 400
        _feed(log, app, name, rng, 400)
        time.sleep(0.3)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    committed = _counted(log, app, name)  # what the killed process had committed
    assert 400 <= committed <= 800
    _feed(log, app, name, rng, 400)
    second = subprocess.run(
        _command(log_url, tmp_path, app, "--until-caught-up"),
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr.decode()
    assert _counted(log, app, name) == 1200  # every outcome counted once, across the kill
    registry.refresh()
    final = registry.get(name)
    registry.close()
    assert final.weights["v2"] >= 0.9, final
    # the second process read exactly what the first had not committed
    assert f"read {1200 - committed} outcomes and 0 decisions" in second.stdout.decode()
