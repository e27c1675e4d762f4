"""Records per second and freshness of every topic of an application, from end offsets.

A thread samples each topic's end offsets once a second (a metadata call,
no record is read) and keeps five minutes of samples: the rate is the
growth over the last few seconds, freshness the time since a topic last
grew, and the history draws the Loop page's traffic chart.

>>> rates = TopicRates.__new__(TopicRates); rates._reset()
>>> rates.add("shop.decisions", 0.0, 100); rates.add("shop.decisions", 2.0, 150)
>>> rates.rate("shop.decisions"), rates.total("shop.decisions"), rates.rate("nope")
(25.0, 150, None)
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
import time

from loopline.log import Log, LogError, TopicInfo

__all__ = ["TopicRates"]

SPAN = 300.0  # seconds of samples held
RATE_OVER = 5.0  # seconds a rate is measured over


class TopicRates:
    """Samples the end offsets of `log`'s topics whose names start with `prefixes`."""

    def __init__(
        self,
        log: Log,
        prefixes: tuple[str, ...],
        extra: tuple[str, ...] = (),
        interval: float = 1.0,
    ) -> None:
        self._reset()
        self.log, self.prefixes, self.extra, self.interval = log, prefixes, extra, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-rates", daemon=True)
        self._thread.start()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, collections.deque[tuple[float, int]]] = {}
        self._grew: dict[str, float] = {}
        self._info: dict[str, TopicInfo] = {}
        self.sampled = threading.Event()

    def add(self, topic: str, at: float, total: int) -> None:
        """One sample: `topic` held `total` records (sum of end offsets) at `at` (seconds)."""
        with self._lock:
            held = self._samples.setdefault(topic, collections.deque())
            if not held or total != held[-1][1]:
                self._grew[topic] = at
            held.append((at, total))
            while held and at - held[0][0] > SPAN:
                held.popleft()

    def topics(self) -> list[str]:
        with self._lock:
            return sorted(self._samples)

    def info(self, topic: str) -> TopicInfo | None:
        with self._lock:
            return self._info.get(topic)

    def total(self, topic: str) -> int | None:
        with self._lock:
            held = self._samples.get(topic)
            return held[-1][1] if held else None

    def rate(self, topic: str) -> float | None:
        """Records appended per second over the last few seconds (None before two samples)."""
        with self._lock:
            held = self._samples.get(topic)
            if not held or len(held) < 2:
                return None
            last_at, last = held[-1]
            first_at, first = held[0]
            for at, total in reversed(held):
                first_at, first = at, total
                if last_at - at >= RATE_OVER:
                    break
            return (last - first) / (last_at - first_at) if last_at > first_at else None

    def idle(self, topic: str, now: float | None = None) -> float | None:
        """Seconds since `topic` last grew, as far as the samples saw (None: never seen)."""
        with self._lock:
            grew = self._grew.get(topic)
        return None if grew is None else (now or time.monotonic()) - grew

    def behind(self, topic: str, position: int, now: float | None = None) -> float | None:
        """Seconds since `topic` first held more than `position` records (the sum of a
        consumer's positions): how old its oldest record not yet consumed is, as far as the
        samples tell; 0 when no sample held more; the oldest sample's age when all did.

        >>> rates = TopicRates.__new__(TopicRates); rates._reset()
        >>> for at, total in ((0.0, 100), (1.0, 150), (2.0, 200)):
        ...     rates.add("t", at, total)
        >>> rates.behind("t", 120, now=3.0), rates.behind("t", 200, now=3.0), rates.behind("t", 50, now=3.0)
        (2.0, 0.0, 3.0)
        """
        with self._lock:
            held = list(self._samples.get(topic, ()))
        first = next((at for at, total in held if total > position), None)
        return 0.0 if first is None else (now or time.monotonic()) - first

    def history(self, topic: str) -> list[tuple[float, float | None]]:
        """(epoch ms, records/s) between consecutive samples, oldest first."""
        with self._lock:
            held = list(self._samples.get(topic, ()))
        offset = time.time() - time.monotonic()
        out: list[tuple[float, float | None]] = []
        for (a_at, a), (b_at, b) in itertools.pairwise(held):
            out.append(((b_at + offset) * 1000, (b - a) / (b_at - a_at) if b_at > a_at else None))
        return out

    def _names(self) -> list[str]:
        listed = self.log.list_topics()
        return sorted(t for t in listed if t.startswith(self.prefixes) or t in self.extra)

    def _run(self) -> None:
        names: list[str] = []
        listed_at = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            with contextlib.suppress(LogError):
                if now - listed_at > 5.0:  # new topics appear rarely; listing is not free
                    names, listed_at = self._names(), now
                for name in names:
                    with contextlib.suppress(LogError):
                        info = self.log.describe_topic(name)
                        with self._lock:
                            self._info[name] = info
                        self.add(name, time.monotonic(), sum(p.end for p in info.partitions))
            self.sampled.set()
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
