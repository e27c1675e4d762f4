"""Start a loopline HTTP server as the CLI runs it (a real process on a free port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(extra: dict[str, str] | None) -> dict[str, str]:
    """This process's environment without loopline tokens, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not (k.startswith("LOOPLINE_") and "TOKEN" in k)}
    return {**base, "PYTHONPATH": SRC, **(extra or {})}


def run_loopline(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``loopline ARGS`` to its end (for commands that refuse to start)."""
    return subprocess.run(
        [sys.executable, "-m", "loopline", *args],
        capture_output=True,
        text=True,
        env=environment(env),
        timeout=timeout,
    )


@contextmanager
def cli_server(
    *args: str, port: int, env: dict[str, str] | None = None, ready: str = "/openapi.json"
) -> Iterator[tuple[str, list[str]]]:
    """Run ``loopline ARGS`` (a server on `port`) until the block ends; yield (url, stderr lines).

    The stderr lines are read once the process has stopped, so they are
    complete after the block.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "loopline", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(env),
    )
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server stopped: {process.stderr.read()}")  # type: ignore[union-attr]
            try:
                httpx.get(url + ready, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError("the server did not start in 60 s") from None
                time.sleep(0.2)
        yield url, lines
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        lines += err.splitlines()
