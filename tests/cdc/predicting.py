"""A model on the CDC-fed `score` feature, and a real `loopline serve` answering /v1/predict.

The model is trained on tiny data whose label follows `score` (1 above
250, else 0), so its answer moves when an update crosses 250 and falls back
when a delete brings the feature's default (-1).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from loopline.log import Log
from loopline.models.registry import ModelRegistry
from loopline.models.trainers import LightGBMTrainer

KEY = "a cdc serving test secret, 16+ bytes"


def train() -> LightGBMTrainer:
    """A score above 250 is good, below it bad."""
    rng = np.random.default_rng(19)
    X = rng.uniform(-50, 1000, 300).reshape(-1, 1)
    trainer = LightGBMTrainer({"num_leaves": 4, "min_data_in_leaf": 5}, num_boost_round=10)
    trainer.fit(X, (X[:, 0] > 250).astype(int), features=["score"])
    return trainer


def publish(log: Log, name: str, trainer: LightGBMTrainer) -> None:
    """Publish `trainer` as `name` and point `production` at it (signed with KEY)."""
    registry = ModelRegistry(log)
    try:
        data, format = trainer.save()
        version = registry.publish(
            name, data, format=format, trainer="lightgbm", features=[("score", "float")]
        )
        registry.promote(name, version.version, "production")
    finally:
        registry.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(log_url: str, app: str, model: str, state: Path) -> Iterator[httpx.Client]:
    """`loopline serve APP` on a free port (PYTHONPATH and KEY from the environment),
    ready; a client on it."""
    url = f"http://127.0.0.1:{_free_port()}"
    state.mkdir(parents=True, exist_ok=True)
    out = open(state / "serve.log", "w")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, "-m", "loopline", "--log", log_url, "serve", app, "--model", model,
         "--port", url.rsplit(":", 1)[1], "--state-dir", str(state / "journal"),
         "--decision-writes", "queued"],
        stdout=out, stderr=out, env=os.environ.copy(),
    )  # fmt: skip
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, (state / "serve.log").read_text()[-3000:]
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "loopline serve was not ready in 120 s"
                time.sleep(0.1)
            yield client
    finally:
        process.terminate()
        process.wait(30)
        out.close()


def score(client: httpx.Client, key: str) -> float:
    answer = client.post("/v1/predict", json={"entity": key})
    assert answer.status_code == 200, answer.text
    return answer.json()["score"]


def waits(checks: dict[str, Callable[[], bool]], since: float, limit: float) -> dict[str, float]:
    """Seconds from `since` until each check first held, all polled in turn (fail after `limit`)."""
    seen: dict[str, float] = {}
    while len(seen) < len(checks):
        for name, check in checks.items():
            if name not in seen and check():
                seen[name] = time.monotonic() - since
        missing = sorted(set(checks) - set(seen))
        assert time.monotonic() - since < limit, f"not seen in {limit} s: {missing}"
    return seen
