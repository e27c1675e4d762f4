"""Readiness says the truth: not ready before the online features exist; clean start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from loopline.features.processor import FeatureProcessor
from serving.helpers import KEY, SRC, app_source, fit, make_shop, publish, serving, wait_ready


@pytest.fixture
def unprocessed(log, monkeypatch):
    """A shop whose feature processor has not run yet."""
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    shop = make_shop(log, process=False)
    yield shop
    shop.models.close()
    shop.schemas.close()


def test_readyz_is_503_until_the_features_are_computed(unprocessed, tmp_path) -> None:
    shop = unprocessed
    publish(shop, shop.scorer, fit(["age"]))
    with serving(shop, shop.scorer, tmp_path) as (client, service):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the model loads meanwhile
            answer = client.get("/readyz")
            assert answer.status_code == 503, answer.text
            time.sleep(0.1)
        assert service.served is not None
        waiting = " ".join(answer.json()["waiting_for"])
        assert "loopline features run" in waiting and shop.app.features.tables[0].source in waiting
        unknown = client.post("/v1/predict", json={"entity": "m-1"})
        assert unknown.status_code == 404
        assert "loopline features run" in unknown.json()["error"]
        processor = FeatureProcessor(shop.log, shop.app)
        try:
            processor.run_until_caught_up()
        finally:
            processor.close()
        wait_ready(client)
        assert client.post("/v1/predict", json={"entity": "m-1"}).status_code == 200


@pytest.mark.parametrize("backend", ["embedded"])
def test_serve_with_a_short_signing_key_exits_with_one_clear_error(unprocessed, log_url, tmp_path):
    (tmp_path / "servedapp.py").write_text(app_source(unprocessed))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC]),
        "LOOPLINE_SIGNING_KEY": "x",
    }
    command = [sys.executable, "-m", "loopline", "--log", log_url, "serve", "servedapp:app",
               "--model", unprocessed.scorer, "--port", "0", "--state-dir", str(tmp_path / "s")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "LOOPLINE_SIGNING_KEY" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "closed" not in done.stderr, done.stderr
