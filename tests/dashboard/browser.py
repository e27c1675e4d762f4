"""A demo (which runs its own monitor) and two dashboards for a module of browser tests.

`DemoRun.start` runs ``loopline demo --dashboard-port 0`` on a log, then
``loopline dashboard --token`` on the same application; `stop` sends each
Ctrl-C. A second ``loopline monitor`` is not started: the demo's monitor
holds the application's monitor group, which the embedded log gives to one
member only. Chromium is Debian's (/usr/bin/chromium), driven by
Playwright; its own browsers are never downloaded. `Watched` records a
page's console errors and failed requests.
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


class Watched:
    """A page whose console errors, failed requests and requested hosts are recorded.

    A request the page's own navigation cuts off (a live part's refresh still in
    flight when the test goes to the next page or reloads) is not a failure: the
    browser aborts it with ``net::ERR_ABORTED``. It is kept apart in `left`. Any
    other failure, and an abort with no navigation after the request started,
    goes to `failed`.
    """

    def __init__(self, browser, width: int = 1280, height: int = 800, **kw) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height}, **kw)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.left: list[str] = []
        self.urls: list[str] = []
        self.navigations = 0
        self._started: dict[object, int] = {}  # request -> navigations before it
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)
        self.page.on("requestfailed", self._request_failed)
        self.page.on(
            "response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} {r.status}")
        )
        self.page.on("dialog", lambda d: d.accept())

    def _request(self, request) -> None:
        self.urls.append(request.url)
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.navigations += 1
        else:
            self._started[request] = self.navigations

    def _request_failed(self, request) -> None:
        started = self._started.pop(request, self.navigations)
        failure = f"{request.url} {request.failure}"
        if "ERR_ABORTED" in (request.failure or "") and self.navigations > started:
            self.left.append(failure)
        else:
            self.failed.append(failure)

    def weight(self) -> int:
        """Bytes transferred for the document and everything it loaded."""
        return self.page.evaluate(
            """() => performance.getEntriesByType('navigation')
                .concat(performance.getEntriesByType('resource'))
                .reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0)"""
        )

    def close(self) -> None:
        self.context.close()
