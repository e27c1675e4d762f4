"""What the decision log needs around its journal: answers that wait for it, record limits,
and the look at the topic that makes a restart exactly-once.

`Waiters` is the group commit's other half: each submitted decision has a
ticket (its place in the journal's order), an answer waits on a future for
its ticket, and the journal thread settles every waiting ticket a write
covered with one call into each event loop.

>>> import asyncio
>>> waiters = Waiters()
>>> async def answer():
...     future = waiters.wait(1, asyncio.get_running_loop())
...     waiters.settle(1, kept=1, why="")  # the journal wrote ticket 1
...     await future
...     return waiters.settled
>>> asyncio.run(answer())
1
>>> waiters.settle(1, kept=0, why="disk full")  # ticket 2 could not be written
>>> waiters.wait(2, None)
Traceback (most recent call last):
...
loopline.serving.journal.DecisionNotKept: disk full
>>> decision_id(b'{"decision_id": "0190-ab", "kind": "rank"}'), decision_id(b"not json")
('0190-ab', '?')
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import msgspec

from loopline.log import Log, LogError

__all__ = [
    "DecisionNotKept",
    "Waiters",
    "decision_id",
    "on_topic_already",
    "record_limit",
]

KAFKA_RECORD_BYTES = 1_000_000
"""librdkafka's ``message.max.bytes`` (the broker's own default is 1,048,588): the most any
record may have unless the topic says less."""
FRAMING = 512
"""Room left for a record's framing (batch and record headers) under the limit."""


class DecisionNotKept(RuntimeError):
    """The decision could not be written to the journal: its answer must not leave."""


class Waiters:
    """Futures of answers waiting for the journal, by ticket; settled in ticket order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settled = 0
        """Tickets the journal has dealt with (written or not)."""
        self._waiting: list[tuple[int, Any, asyncio.Future[None]]] = []
        self._failures: deque[tuple[int, int, str]] = deque(maxlen=1000)

    def wait(self, ticket: int, loop: Any) -> asyncio.Future[None] | None:
        """A future of `loop` for `ticket`; None if it is written already.

        Raises `DecisionNotKept` if the journal could not write it.
        """
        with self._lock:
            if ticket <= self.settled:
                for first, last, why in self._failures:
                    if first <= ticket <= last:
                        raise DecisionNotKept(why)
                return None
            future = loop.create_future()
            self._waiting.append((ticket, loop, future))
            return future

    def settle(self, count: int, kept: int, why: str) -> None:
        """The journal dealt with the next `count` tickets: the first `kept` are written."""
        with self._lock:
            first = self.settled + 1
            self.settled += count
            if kept < count:
                self._failures.append((first + kept, self.settled, why))
            done = [w for w in self._waiting if w[0] <= self.settled]
            if done:
                self._waiting = [w for w in self._waiting if w[0] > self.settled]
        by_loop: dict[Any, list[tuple[asyncio.Future[None], str]]] = {}
        for ticket, loop, future in done:
            by_loop.setdefault(loop, []).append((future, why if ticket >= first + kept else ""))
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[tuple[asyncio.Future[None], str]]) -> None:
    for future, why in futures:
        if not future.done():
            if why:
                future.set_exception(DecisionNotKept(why))
            else:
                future.set_result(None)


class _Id(msgspec.Struct):
    decision_id: str = "?"


_decode_id = msgspec.json.Decoder(_Id).decode


def decision_id(value: bytes | None) -> str:
    """The decision id in an encoded decision ('?' if there is none)."""
    try:
        return _decode_id(value or b"").decision_id
    except (msgspec.DecodeError, TypeError):
        return "?"


def record_limit(log: Log, topic: str) -> int:
    """The most bytes (key and value) a record of `topic` may have, from its ``max.message.bytes``."""
    try:
        setting = log.describe_topic(topic).config.extra.get("max.message.bytes")
        limit = int(setting) if setting is not None else KAFKA_RECORD_BYTES
    except (LogError, ValueError):
        limit = KAFKA_RECORD_BYTES
    return min(limit, KAFKA_RECORD_BYTES) - FRAMING


def on_topic_already(
    log: Log,
    topic: str,
    rows: Sequence[tuple[int, bytes | None, bytes, int | None]],
    timeout: float,
) -> int | None:
    """The last sequence number of `rows` (backlog rows) whose decision is on `topic`, if any.

    Reads `topic` from the time of the oldest of them to its end (committed
    records only). Raises `LogError` if that takes over `timeout` seconds.
    """
    if not rows:
        return None
    seq_of = {decision_id(value): seq for seq, _, value, _ in rows}
    since = min((ts for *_, ts in rows if ts is not None), default=0)
    found: int | None = None
    consumer = log.consumer(None, [topic], reset="earliest")
    try:
        consumer.seek_to_time(since)
        deadline = time.monotonic() + timeout
        while True:
            records = consumer.poll(1000, timeout=0.5)
            for record in records:
                seq = seq_of.get(decision_id(record.value))
                if seq is not None and (found is None or seq > found):
                    found = seq
            if not records and not any(consumer.lag().values()):
                return found
            if time.monotonic() > deadline:
                raise LogError(f"could not read topic {topic!r} to its end in {timeout:g} s")
    finally:
        consumer.close()
