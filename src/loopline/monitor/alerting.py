"""The monitor's alerting: rules judged in its transaction, alerts sent to hooks after commit.

`Alerting` judges each closed window of the shortest size against the rules
(`loopline.monitor.judge`) and the source topics' silence on the clock
(`loopline.monitor.sources`), writes the `AlertRecord`s to ``<app>.alerts``
through the task's `Context` (so they commit with the windows, exactly
once), keeps the standings in the monitor's state (changelog entries
``alert:<id>``), and after each commit hands the alerts just committed to
the hooks (a `loopline.monitor.webhook.Webhook`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from loopline.monitor import metrics
from loopline.monitor.alerts import Alert, AlertRecord
from loopline.monitor.judge import Judge, Observation, observations
from loopline.monitor.records import MonitorRecord
from loopline.monitor.state import ALERT, MonitorState
from loopline.stream.task import Context

__all__ = ["Alerting"]


class Alerting:
    """Alerts of application `app` on `topic` by `rules`, told to `hooks` (see the module)."""

    def __init__(
        self,
        app: str,
        topic: str,
        rules: Sequence[Alert],
        hooks: Sequence[Callable[[AlertRecord], None]] = (),
    ) -> None:
        self.app, self.topic, self.rules, self.hooks = app, topic, tuple(rules), tuple(hooks)
        self.pending: list[AlertRecord] = []
        self.sent = 0
        self._encode = msgspec.json.Encoder().encode

    def send(self, context: Context, alert: AlertRecord) -> None:
        context.send(self.topic, self._encode(alert), alert.id.encode(), timestamp=alert.at)
        self.pending.append(alert)
        self.sent += 1

    def window(
        self, context: Context, state: MonitorState, record: MonitorRecord, test_auc: float | None
    ) -> None:
        """Judge closed window `record` (`test_auc`: its version's, for the AUC rule)."""
        judge, size = Judge(state.alerts), record.end - record.start
        for seen in observations(record, self.rules, test_auc):
            alert = judge.observe(
                seen, record.window, record.start, record.end, source=record.source, size=size
            )
            if alert is not None:
                self.send(context, alert)
        # then the open alerts of the source no window has judged for a while: a window of
        # another scope ending at the same time may be judged after this one, but its standing
        # was seen one window ago at the latest, too recent to count as unseen
        for alert in judge.unseen(record.source, record.window, record.end):
            self.send(context, alert)
        state.changed.update(ALERT + id for id in judge.changed)

    def freshness(
        self, context: Context, state: MonitorState, sources: Sequence[str], now: int
    ) -> int:
        """Judge every source topic's silence at `now`; how many alerts opened or resolved."""
        judge, sent = Judge(state.alerts), 0
        for topic in sources:
            source = state.sources.get(topic)
            if source is None:
                continue
            metrics.SOURCE_AGE.labels(self.app, topic).set(max(0, now - source.newest) / 1000)
            metrics.SOURCE_RECORDS.labels(self.app, topic).set(source.records)
            if source.interval:
                metrics.SOURCE_RATE.labels(self.app, topic).set(1000 / source.interval)
            silence = source.silence(now)
            for rule in self.rules:
                if rule.metric != "freshness" or silence is None:
                    continue
                low, high = rule.limits(None)
                seen = Observation(
                    rule, topic, "", silence, source.interval, low, high, source.records
                )
                alert = judge.observe(seen, "", source.newest, now)
                if alert is not None and alert.state != "updated":
                    self.send(context, alert)
                    sent += 1
                else:  # still silent, or still fresh: no news, not worth a changelog write
                    judge.changed.discard(f"{rule.name}:{topic}")
        state.changed.update(ALERT + id for id in judge.changed)
        return sent

    def committed(self, state: MonitorState | None) -> None:
        """Hand the alerts just committed to the hooks; the open-alerts gauge."""
        pending, self.pending = self.pending, []
        for alert in pending:
            for hook in self.hooks:
                hook(alert)
        if state is not None:
            metrics.ALERTS_OPEN.labels(self.app).set(
                sum(1 for s in state.alerts.values() if s.opened_at)
            )

    def reset(self) -> None:
        """A commit failed: the alerts not committed are never told."""
        self.pending = []
