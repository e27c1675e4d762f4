"""What a running `loopline serve` says on stderr: a missing alias at start, each swap, each
refusal. A real process on the embedded log."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from serving.helpers import KEY, SRC, app_source, fit, make_shop, publish


@pytest.fixture
def shop(log, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    shop = make_shop(log)
    yield shop
    shop.models.close()
    shop.schemas.close()


class Lines:
    """The stderr lines of a process, read as they come."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines))


@pytest.mark.parametrize("backend", ["embedded"])
def test_serve_says_a_missing_alias_and_each_swap_and_refusal(shop, log_url, tmp_path) -> None:
    (tmp_path / "servedapp.py").write_text(app_source(shop))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC])}
    env["LOOPLINE_SIGNING_KEY"] = KEY
    command = [sys.executable, "-m", "loopline", "--log", log_url, "serve", "servedapp:app",
               "--model", shop.scorer, "--alias", "candidate", "--port", "0",
               "--state-dir", str(tmp_path / "s")]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc.stderr)
    try:
        said = lines.wait_for("has no alias 'candidate'")
        assert said == (
            f"warning: model {shop.scorer!r} has no alias 'candidate' yet: nothing is served "
            f"(/readyz is 503) until `loopline models promote {shop.scorer} VERSION --alias "
            "candidate`"
        )
        version = publish(shop, shop.scorer, fit(["age"]))  # to production
        shop.models.promote(shop.scorer, version, "candidate")
        lines.wait_for(f"serving model {shop.scorer!r} v{version} (alias 'candidate')")
        wrong = publish(shop, shop.scorer, fit(["age", "clicks_1h"]))  # an undeclared feature
        shop.models.promote(shop.scorer, wrong, "candidate")
        refused = lines.wait_for(f"v{version} keeps serving")
        assert f"v{wrong}" in refused
    finally:
        proc.terminate()
        proc.wait(timeout=60)
