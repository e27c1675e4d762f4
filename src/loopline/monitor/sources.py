"""Freshness of source topics: the age of the newest record against the usual interval.

A `SourceState` follows one source topic: how many records, the newest
record time, and the usual interval between records (an exponentially
weighted mean of the gaps between successive record times, ``ALPHA``). Its
`silence` is how many usual intervals have passed since the newest record
(the clock minus the newest time, over the usual interval, never below
`MIN_INTERVAL` so a fast feed is not "silent" for a few milliseconds).

>>> s = SourceState()
>>> for t in (0, 1000, 2000, 3000):
...     s.add(t)
>>> s.interval, s.silence(now=4000), s.silence(now=33_000)
(1000.0, 1.0, 30.0)
"""

from __future__ import annotations

import msgspec

__all__ = ["ALPHA", "MIN_INTERVAL", "SourceState"]

ALPHA = 0.1
MIN_INTERVAL = 1000.0  # ms


class SourceState(msgspec.Struct):
    """One source topic as the monitor saw it (plain data: it goes to the changelog)."""

    records: int = 0
    newest: int = 0
    interval: float | None = None

    def add(self, at: int) -> None:
        """Count a record of time `at` (ms)."""
        if self.records and at > self.newest:
            gap = float(at - self.newest)
            self.interval = (
                gap if self.interval is None else self.interval + ALPHA * (gap - self.interval)
            )
        self.records += 1
        self.newest = max(self.newest, at)

    def silence(self, now: int) -> float | None:
        """Usual intervals since the newest record (None before there is an interval)."""
        if self.interval is None:
            return None
        return max(0, now - self.newest) / max(self.interval, MIN_INTERVAL)
