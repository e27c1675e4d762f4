"""Helpers for tests (import as `from support import ...`)."""

from __future__ import annotations

import time
import uuid


def unique(prefix: str = "g") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def consume_all(consumer, expected: int, timeout: float = 30.0, max_records: int = 1000) -> list:
    """Poll until `expected` records arrived or `timeout` passed; return what arrived."""
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        out += consumer.poll(max_records=max_records, timeout=0.5)
    return out


def examples(backend: str, embedded: int = 50, kafka: int = 8) -> int:
    """How many hypothesis examples to run: each Kafka example creates real topics."""
    return kafka if backend == "kafka" else embedded
