"""How far behind each of the application's consumers is: records not yet committed, and how
old the oldest of them is.

A thread reads the committed offsets of the application's consumer groups
(`loopline.log.Log.committed_offsets`: an admin read that does not join the
group, as the monitor's `loopline.monitor.feeds.GroupLags` does) every two
seconds, and measures them against the topics' end offsets read just after
(`TopicRates`' samples date the records). Per group and topic: ``lag``, the records after the committed offsets
(a partition never committed counts from its first record held), and
``behind``, the seconds since the first of those records arrived, as far as
the end-offset samples tell (0 when caught up; at most the five minutes the
samples hold, then a lower bound). On Kafka a group that has read
everything of a topic written in transactions stays one record (the commit
marker) behind per partition, as Kafka's own tools show it; its freshness is
0 s. The monitor measures the lag of the groups
reading the source topics only once a window closes; the Loop page moves
every two seconds and shows every stage (decision 0037).

>>> lag = Lag("shop.outcomes.join", {"shop.decisions": (12, 1.5), "shop.outcomes": (0, 0.0)})
>>> lag.records, lag.behind
(12, 1.5)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from loopline.dashboard.topic_rates import TopicRates
from loopline.log import Log, LogError

__all__ = ["ConsumerLags", "Lag"]


@dataclass(frozen=True)
class Lag:
    """Consumer group `group`'s (lag, seconds behind) per topic it committed offsets of."""

    group: str
    topics: dict[str, tuple[int, float | None]]

    @property
    def records(self) -> int:
        """Records after the committed offsets, over every topic."""
        return sum(lag for lag, _ in self.topics.values())

    @property
    def behind(self) -> float | None:
        """Seconds since the oldest record not yet committed arrived (the worst topic)."""
        return max((b for _, b in self.topics.values() if b is not None), default=None)


class ConsumerLags:
    """Follows the committed offsets of consumer `groups` on `log`, against `rates`' ends."""

    def __init__(
        self, log: Log, groups: Sequence[str], rates: TopicRates, *, interval: float = 2.0
    ) -> None:
        self.log, self.groups, self.rates, self.interval = log, tuple(groups), rates, interval
        self._lock = threading.Lock()
        self._lags: dict[str, Lag] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-lags", daemon=True)
        self._thread.start()

    def lag(self, group: str) -> Lag | None:
        """The newest measure of `group` (None: it never committed an offset of a topic held)."""
        with self._lock:
            return self._lags.get(group)

    def measure(self, group: str) -> Lag | None:
        """Read `group`'s committed offsets now and measure them (what the thread does)."""
        committed = self.log.committed_offsets(group)
        topics: dict[str, tuple[int, float | None]] = {}
        for topic in sorted({tp.topic for tp in committed}):
            if self.rates.info(topic) is None:  # not one of the application's topics (yet)
                continue
            # the ends read after the committed offsets: a lag is never negative, never stale
            info = self.log.describe_topic(topic)
            mine = {tp.partition: o for tp, o in committed.items() if tp.topic == topic}
            at = {p.partition: mine.get(p.partition, p.start) for p in info.partitions}
            lag = sum(max(0, p.end - at[p.partition]) for p in info.partitions)
            topics[topic] = (lag, self.rates.behind(topic, sum(at.values())) if lag else 0.0)
        return Lag(group, topics) if topics else None

    def _run(self) -> None:
        while not self._stop.is_set():
            for group in self.groups:
                with contextlib.suppress(LogError):  # the broker is away: the next round tries
                    measured = self.measure(group)
                    with self._lock:
                        if measured is None:
                            self._lags.pop(group, None)
                        else:
                            self._lags[group] = measured
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
