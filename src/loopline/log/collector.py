"""A pause of Python's cyclic garbage collector around building many acyclic objects at once.

Turning a batch of records into Python objects (log records, decoded JSON rows, labelled
examples) allocates tens of thousands of tuples and dicts at once. Each 700 allocations set
off a young pass, and every tenth of those a middle pass, which walk everything built so
far although tuples of bytes, str and int and dicts of floats can never form a reference
cycle. Measured: ~1,200 ns per Kafka record with the collector running, ~520 ns without
(10k-record batches, `loopline.log.kafka.messages`); a third of the time of reading a topic
into a dataset (`loopline.features.offline.datasets`).

`collector_paused` is the one way loopline does this: it leaves the collector as it found
it, so pauses nest, and a collector the user turned off stays off. It is for the build of
one batch, never for a long-running loop; a long-running process that wants fewer full
passes over its long-lived objects sets thresholds instead (`quiet_collector`).

It is a small class, not a ``contextlib.contextmanager`` generator, because it sits on the
per-batch path of every consumer: ~250 ns per use against ~1,050 ns for the generator
(and ~60 ns for the same lines written inline). Every use makes a new one, so two threads
pausing at once cannot leave the collector off.

>>> import gc
>>> with collector_paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
>>> gc.disable()
>>> with collector_paused():  # a collector turned off stays off
...     pass
>>> gc.isenabled()
False
>>> gc.enable()
"""

from __future__ import annotations

import gc
from types import TracebackType

__all__ = ["FULL_PASS_AFTER", "collector_paused", "quiet_collector"]

FULL_PASS_AFTER = 10_000
"""Middle passes before a full pass (CPython's default is 10)."""


class collector_paused:
    """The cyclic garbage collector off inside the ``with`` block, as it was after it."""

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._was_enabled:
            gc.enable()


class quiet_collector:
    """Make full passes of the cyclic garbage collector rare in this process.

    CPython makes a full pass over every tracked object once the oldest
    generation grew by a quarter and ten middle passes have run. A
    long-running process holds large state: a prediction service its online
    features, a feature processor or a monitor the state of every entity or
    window (hundreds of thousands to millions of objects). A full pass over
    it holds the GIL for 50 to 200 ms on a 2-core machine: at 500 requests/s
    that alone was serving's p99 (decision 0013), and in a feature processor
    the passes took a third of the time (decision 0041).

    Young and middle passes stay as they are (they find the short-lived
    cycles, in about a millisecond); a full pass waits for 10,000 middle
    passes, not 10: one in tens of minutes instead of one every few seconds.
    Cyclic garbage that reached the oldest generation waits that long to be
    freed; the state itself is alive anyway. Called, it holds for the rest of
    the process (`loopline serve`); used in a ``with`` block, the thresholds
    it found come back after the block (every long-running stage of the CLI).

    >>> before = gc.get_threshold()
    >>> with quiet_collector():
    ...     gc.get_threshold() == (before[0], before[1], FULL_PASS_AFTER)
    True
    >>> gc.get_threshold() == before
    True
    """

    __slots__ = ("_before",)

    def __init__(self) -> None:
        self._before = gc.get_threshold()
        young, middle, _ = self._before
        gc.set_threshold(young, middle, FULL_PASS_AFTER)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        gc.set_threshold(*self._before)
