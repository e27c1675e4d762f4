"""Fault injection for the stage harness: a log that fails where told, and killable children.

`FaultyLog` wraps a real log (either backend) and, at the calls it is told,
fails a commit (the real transaction is aborted, then `LogError` raised),
refuses a record (`send` raises `LogError`), or hangs a poll for a while.
Everything else is the real log: faults are injected, never simulated
successes. `Child` runs a stage in a process of its own (``child.py``) so
that the harness can ``kill -9`` it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.log import LogError

CHILD = Path(__file__).with_name("child.py")


@dataclass
class Faults:
    """Which calls fail (1-based counts over the whole log handle), and what was injected."""

    commits: set[int] = field(default_factory=set)
    sends: set[int] = field(default_factory=set)
    polls: set[int] = field(default_factory=set)
    hang: float = 1.0
    counts: dict[str, int] = field(default_factory=lambda: {"commit": 0, "send": 0, "poll": 0})
    injected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, call: str, chosen: set[int]) -> bool:
        with self.lock:
            self.counts[call] += 1
            if self.counts[call] in chosen:
                self.injected += 1
                return True
            return False


class _Producer:
    def __init__(self, producer: Any, faults: Faults) -> None:
        self._producer, self._faults = producer, faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        if self._faults.hit("send", self._faults.sends):
            raise LogError("injected: the log refused this record")
        return self._producer.send(*args, **kwargs)

    def send_offsets(self, consumer: Any, *args: Any, **kwargs: Any) -> None:
        inner = consumer._consumer if isinstance(consumer, _Consumer) else consumer
        self._producer.send_offsets(inner, *args, **kwargs)

    def commit_transaction(self) -> None:
        if self._faults.hit("commit", self._faults.commits):
            self._producer.abort_transaction()
            raise LogError("injected: the commit failed")
        self._producer.commit_transaction()


class _Consumer:
    def __init__(self, consumer: Any, faults: Faults) -> None:
        self._consumer, self._faults = consumer, faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        if self._faults.hit("poll", self._faults.polls):
            time.sleep(self._faults.hang)
        return self._consumer.poll(*args, **kwargs)


class FaultyLog:
    """A real log that fails at the calls `faults` names; see the module docstring."""

    def __init__(self, log: Any, faults: Faults) -> None:
        self._log, self.faults = log, faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def producer(self, **kwargs: Any) -> _Producer:
        return _Producer(self._log.producer(**kwargs), self.faults)

    def consumer(self, *args: Any, **kwargs: Any) -> _Consumer:
        return _Consumer(self._log.consumer(*args, **kwargs), self.faults)


class Child:
    """A stage in its own process (``child.py``), killed with SIGKILL when the harness says."""

    def __init__(self, kind: str, url: str, base: str, app: str, instance: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), kind, url, base, app, instance],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.commits = 0
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(b"started"):
                self.started.set()
            elif line.startswith(b"commit"):
                self.commits += 1

    def wait_commits(self, n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.commits < n and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.proc.poll() is not None:
            raise AssertionError(f"the stage process died: {self.stderr()}")

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # a test that failed midway leaves no process behind
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)
        assert self.proc.returncode == -signal.SIGKILL, self.stderr()

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-3000:]


def report(**figures: Any) -> None:
    """Append one run's figures to $LOOPLINE_FAULT_REPORT (JSON lines), if set."""
    path = os.environ.get("LOOPLINE_FAULT_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(figures) + "\n")
