"""The application's source topics as the monitor sees them: records, freshness and lag per window.

A `FeedWindow` counts one source topic's records whose time is in one
tumbling window, and the newest record time seen. Once the monitor has read
everything, it opens an empty window for every source it knows as the clock
enters a new window, so a silent source still gets its records (0 records,
a growing age). When a window closes, `feed_record` makes its
`MonitorRecord` (``source="feeds"``, keyed by the topic): ``records``,
``records_per_second`` over the window, ``age_seconds`` (the window's end
minus the newest record time seen so far: how stale the feed was then), and
per consumer group reading the topic its ``lag`` at that moment (`GroupLags`:
the topic's end offsets minus the group's committed offsets, an admin read
that does not join the group, `loopline.log.Log.committed_offsets`).

>>> from loopline.monitor.windows import WindowKey
>>> key = WindowKey("feeds", 10_000, 50_000, "shop.clicks", 0, "", "")
>>> r = feed_record(key, FeedWindow(records=250, newest=59_500), [GroupLag(group="f", lag=12, partitions=1)])
>>> r.key, r.records, r.records_per_second, r.age_seconds, r.lags[0].lag
('shop.clicks', 250, 25.0, 0.5, 12)
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from loopline.log import Log, LogError, TopicPartition
from loopline.monitor.records import GroupLag, MonitorRecord
from loopline.monitor.summary import window_name
from loopline.monitor.windows import WindowKey

__all__ = ["FEEDS", "FeedWindow", "GroupLags", "feed_record"]

FEEDS = "feeds"


class FeedWindow(msgspec.Struct):
    """One source topic's records in one window (plain data: it goes to the changelog)."""

    records: int = 0
    newest: int = 0  # the newest record time (ms) seen up to this window; 0: none yet


def feed_record(key: WindowKey, w: FeedWindow, lags: Sequence[GroupLag]) -> MonitorRecord:
    """The record of feed window `key` (its topic in ``key.model``), with the groups' `lags`."""
    end = key.start + key.size
    return MonitorRecord(
        source=FEEDS,
        window=window_name(key.size),
        start=key.start,
        end=end,
        model="",
        model_version=0,
        arm="",
        segment="",
        topic=key.model,
        records=w.records,
        records_per_second=w.records * 1000 / key.size,
        newest=w.newest or None,
        age_seconds=max(0, end - w.newest) / 1000 if w.newest else None,
        lags=list(lags),
    )


class GroupLags:
    """The lag of consumer `groups` on source topics, read from `log` once per `refresh`."""

    def __init__(self, log: Log, groups: Sequence[str]) -> None:
        self.log, self.groups = log, tuple(groups)
        self._committed: dict[str, dict[TopicPartition, int]] | None = None
        self._ends: dict[str, dict[int, tuple[int, int]]] = {}

    def refresh(self) -> None:
        """Forget what was read: the next `lags` reads the log again."""
        self._committed, self._ends = None, {}

    def lags(self, topic: str) -> list[GroupLag]:
        """Per group that committed offsets of `topic`: records after its committed offsets
        (a partition it never committed counts from the first record held)."""
        if self._committed is None:
            self._committed = {}
            for group in self.groups:
                try:
                    self._committed[group] = self.log.committed_offsets(group)
                except LogError:  # the broker is away: no lag this time, the next window tries
                    self._committed[group] = {}
        ends = self._ends.get(topic)
        if ends is None:
            try:
                parts = self.log.describe_topic(topic).partitions
            except LogError:
                parts = ()
            ends = self._ends[topic] = {p.partition: (p.start, p.end) for p in parts}
        out = []
        for group, committed in self._committed.items():
            mine = {tp.partition: o for tp, o in committed.items() if tp.topic == topic}
            if not mine or not ends:
                continue
            lag = sum(max(0, end - mine.get(p, start)) for p, (start, end) in ends.items())
            out.append(GroupLag(group=group, lag=lag, partitions=len(ends)))
        return out
