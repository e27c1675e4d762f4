"""Ctrl-C that never cuts a batch in half.

A consume batch is written, then committed; a produce batch is queued, sent,
then flushed. Ctrl-C between two such steps would leave records written but
not committed, or counted wrongly. So Ctrl-C takes effect at once only while
the command waits (for records, for input), inside `interruptible` blocks;
anywhere else it is remembered and raised at the next `check` or wait. A
second Ctrl-C is always immediate.

>>> guard = InterruptGuard()
>>> guard.handle()  # Ctrl-C while a batch is written: remembered
>>> try:
...     with guard.interruptible():  # ... and raised before the next wait
...         print("not reached")
... except KeyboardInterrupt:
...     print("interrupted")
interrupted
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class InterruptGuard:
    """While entered, turns SIGINT into a `KeyboardInterrupt` raised only at safe points."""

    def __init__(self) -> None:
        self.interrupted = False
        self._waiting = 0
        self._previous: Any = None

    def handle(self, signum: int = signal.SIGINT, frame: FrameType | None = None) -> None:
        """The SIGINT handler: raise while waiting or on a second Ctrl-C, else remember."""
        again = self.interrupted
        self.interrupted = True
        if self._waiting or again:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise `KeyboardInterrupt` if Ctrl-C was pressed since the last safe point."""
        if self.interrupted:
            raise KeyboardInterrupt

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A wait that Ctrl-C ends at once (nothing half-done can be inside it)."""
        self.check()
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1

    def __enter__(self) -> InterruptGuard:
        # Handlers can be set only in the main thread. A shell starts background jobs
        # with SIGINT ignored; they stay that way.
        if threading.current_thread() is not threading.main_thread():
            return self
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


@contextmanager
def stopping() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, so a long-running part commits before it stops.

    Signals reach only the main thread: elsewhere (a command run in a thread)
    the event is set by no signal, only by whoever holds it.
    """
    stop = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
