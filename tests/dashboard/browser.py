"""A demo (which runs its own monitor) and two dashboards for a module of browser tests.

`DemoRun.start` runs ``loopline demo --dashboard-port 0`` on a log, then
``loopline dashboard --token`` on the same application; `stop` sends each
Ctrl-C. A second ``loopline monitor`` is not started: the demo's monitor
holds the application's monitor group, which the embedded log gives to one
member only. Chromium is Debian's (/usr/bin/chromium), driven by
Playwright; its own browsers are never downloaded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CHROMIUM = os.environ.get("LOOPLINE_CHROMIUM", "/usr/bin/chromium")
TESTS = Path(__file__).resolve().parents[1]
TOKEN = "dashboard-test-token-0123456789"
DURATION = 300  # the demo's (it is stopped when its tests end): retraining from its 20th second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(app: str = "") -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "LOOPLINE_DEMO_APP": app, "COLUMNS": "200"}


@dataclass
class DemoRun:
    log_url: str
    app: str = ""
    base: str = ""  # the demo's dashboard
    token_base: str = ""  # `loopline dashboard --token`
    processes: list[subprocess.Popen] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return f"{self.app}.pymk"

    def _spawn(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopline", "--log", self.log_url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(self.app),
            cwd=TESTS,
        )
        self.processes.append(process)
        return process

    def _drain(self, process: subprocess.Popen) -> None:
        def read() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                self.output.append(line)

        threading.Thread(target=read, daemon=True).start()

    def start(self) -> DemoRun:
        demo = self._spawn(
            "demo", "--duration", str(DURATION), "--bad-model-at", "10", "--no-live",
            "--dashboard-port", "0",
        )  # fmt: skip
        deadline = time.monotonic() + 120
        for line in demo.stdout:  # type: ignore[union-attr]
            self.output.append(line)
            if found := re.search(r"application (demo-[0-9a-f]{8})", line):
                self.app = found.group(1)
            if found := re.search(r"dashboard on (http://\S+)", line):
                self.base = found.group(1)
                break
            if time.monotonic() > deadline:
                break
        assert self.base, "".join(self.output)
        self._drain(demo)
        port = free_port()
        self._drain(self._spawn(
            "dashboard", "loopline.demo.run_app:app", "--port", str(port), "--token", TOKEN
        ))  # fmt: skip
        self.token_base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(self.token_base), 60, "the dashboard with a token to start")
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check, timeout: float, what: str, every: float = 0.5):
    """Poll `check` until it returns something true; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)
