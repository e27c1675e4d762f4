"""What the monitor wrote, held in memory: the newest windows per key, and every alert.

The dashboard never reads decisions or labelled examples: it follows the
monitor's aggregates (``<app>.monitor``, one record per closed window and
key) and ``<app>.alerts``, from a thread of its own, so a page's data is a
look into memory however many decisions the log holds (decision 0034).
Per (source, window size, key) it keeps the newest `keep` windows.

>>> from loopline.monitor.records import MonitorRecord
>>> feed = MonitorFeed.__new__(MonitorFeed); feed._reset(keep=2)
>>> for end in (60_000, 120_000, 180_000):
...     feed.add(MonitorRecord(source="decisions", window="1m", start=end - 60_000, end=end,
...         model="m", model_version=1, arm="", segment="", decisions=end // 1000))
>>> [r.decisions for r in feed.windows("decisions")]
[120, 180]
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable

import msgspec

from loopline.log import Log, LogError
from loopline.monitor.alerts import AlertRecord
from loopline.monitor.records import MonitorRecord
from loopline.stream import names

__all__ = ["MonitorFeed"]

logger = logging.getLogger(__name__)

KEEP = 240  # windows per key: four hours of 1m windows


class MonitorFeed:
    """Follows ``<app>.monitor`` and ``<app>.alerts`` on `log` until `close`."""

    def __init__(self, log: Log, app_name: str, *, keep: int = KEEP, interval: float = 0.5):
        self._reset(keep)
        self.log = log
        self.topics = (names.monitor(app_name), names.alerts(app_name))
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-monitor", daemon=True)
        self._thread.start()

    def _reset(self, keep: int) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, str], collections.deque[MonitorRecord]] = {}
        self._alerts: dict[str, list[AlertRecord]] = {}
        self.read = 0
        self.caught_up = threading.Event()

    def add(self, record: MonitorRecord) -> None:
        """Hold `record` (the newest `keep` windows of its key stay)."""
        slot = (record.source, record.window, record.key)
        with self._lock:
            held = self._windows.get(slot)
            if held is None:
                held = self._windows[slot] = collections.deque(maxlen=self.keep)
            held.append(record)

    def add_alert(self, alert: AlertRecord) -> None:
        with self._lock:
            self._alerts.setdefault(alert.id, []).append(alert)

    # -- reading ---------------------------------------------------------------------------

    def window_sizes(self) -> list[str]:
        """The window sizes seen, shortest first (``30s`` before ``1m`` before ``1h``)."""
        from loopline.log import parse_duration

        with self._lock:
            sizes = {w for _, w, _ in self._windows}
        return sorted(sizes, key=lambda w: parse_duration(w) or 0)

    def windows(
        self,
        source: str,
        window: str | None = None,
        where: Callable[[MonitorRecord], bool] = lambda r: True,
    ) -> list[MonitorRecord]:
        """The held windows of `source` (of size `window`, default the shortest), oldest first."""
        window = window or next(iter(self.window_sizes()), None)
        with self._lock:
            out = [
                r
                for (s, w, _), held in self._windows.items()
                if s == source and w == window
                for r in held
                if where(r)
            ]
        return sorted(out, key=lambda r: (r.end, r.key))

    def alerts(self) -> dict[str, list[AlertRecord]]:
        """Every alert's changes, by alert id, oldest first."""
        with self._lock:
            return {k: list(v) for k, v in self._alerts.items()}

    def open_alerts(self) -> list[AlertRecord]:
        """The newest change of every alert that is not resolved."""
        return [v[-1] for v in self.alerts().values() if v[-1].state != "resolved"]

    # -- following -------------------------------------------------------------------------

    def _run(self) -> None:
        decode_record = msgspec.json.Decoder(MonitorRecord).decode
        decode_alert = msgspec.json.Decoder(AlertRecord).decode
        consumer = None
        try:
            while not self._stop.is_set():
                if consumer is None:
                    with contextlib.suppress(LogError):
                        present = [t for t in self.topics if t in self.log.list_topics()]
                        if len(present) == len(self.topics):
                            consumer = self.log.consumer(None, present, reset="earliest")
                    if consumer is None:
                        self.caught_up.set()  # nothing to read yet: the monitor has not started
                        self._stop.wait(2.0)
                        continue
                try:
                    batch = consumer.poll(2000, timeout=self.interval)
                except LogError as exc:
                    logger.warning("the dashboard could not read the monitor's topics: %s", exc)
                    self._stop.wait(1.0)
                    continue
                for record in batch:
                    if record.value is None:
                        continue
                    try:
                        if record.topic == self.topics[0]:
                            self.add(decode_record(record.value))
                        else:
                            self.add_alert(decode_alert(record.value))
                    except msgspec.DecodeError:
                        continue  # not ours to judge: the monitor's contract says what is valid
                    self.read += 1
                if not batch:
                    self.caught_up.set()
        finally:
            if consumer is not None:
                consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
