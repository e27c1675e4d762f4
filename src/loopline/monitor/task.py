"""The monitor: decisions and labelled examples -> one record per window and key, exactly once.

`Monitor` reads ``<app>.decisions`` and ``<app>.labelled`` in the consumer
group ``<app>.monitor.run`` and counts them in tumbling event-time windows
(default ``1m`` and ``1h``) per key: model, version, experiment arm and
segment (the value of the decision's context field `segment`, "" when none
is declared; labelled examples carry no context, so their segment is "").
A decision counts in the window of its ``at``; a labelled example in the
window of its ``closed_at`` (when its label became known). Each source has
its watermark: the newest event time read minus `lateness`; a window closes
when the watermark passes its end, and once everything is read also when
the clock (`clock`, epoch ms) minus `lateness` does, so a quiet stream
still closes its windows. A closed window becomes a `MonitorRecord`
(`loopline.monitor.records`) on ``<app>.monitor``; a record read after its
window closed is counted in ``stats.late`` and left out. The application's
source topics are counted too, by record time, into ``feeds`` windows with
their freshness and the lag of the consumer groups that read them
(`loopline.monitor.feeds`).

State (open windows, watermarks) goes to the compacted
``<app>.monitor.changelog`` in the same transaction as the records and the
input offsets (a task on `loopline.stream`): after kill -9 and a restart,
every record is written exactly once. The monitor keeps one state for all
input partitions: run one member per application. An unreadable record
goes to ``<topic>.dlq`` with the reason.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from loopline.app import App
from loopline.contracts import LogRegistry
from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.log import Log, Record, TopicConfig, TopicExists, TopicPartition, parse_duration
from loopline.log.collector import collector_paused
from loopline.monitor import metrics
from loopline.monitor.alerting import Alerting
from loopline.monitor.alerts import DEFAULT_ALERTS, Alert, AlertRecord
from loopline.monitor.baselines import Baseline, Profiles, TestAuc
from loopline.monitor.batch import count_decisions
from loopline.monitor.feeds import FEEDS, FeedWindow, GroupLags, feed_record
from loopline.monitor.records import monitor_topic
from loopline.monitor.sources import SourceState
from loopline.monitor.state import SOURCE, WATERMARK, Codec, MonitorState
from loopline.monitor.summary import decision_record, label_record
from loopline.monitor.windows import DecisionWindow, LabelWindow, WindowKey, window_start
from loopline.outcomes.inputs import decoder
from loopline.outcomes.labelled import LabelledExample
from loopline.serving.decisions import Decision
from loopline.stream import names
from loopline.stream.deadletters import dlq_topic
from loopline.stream.runner import Runner
from loopline.stream.stage import Stage
from loopline.stream.state import PartitionedState
from loopline.stream.task import Context, TaskStats

__all__ = ["Monitor", "MonitorStats"]


def _raw(value: bytes | None) -> bytes | None:
    return value  # a source topic's records are counted, never decoded


def wall_clock() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class MonitorStats(TaskStats):
    """What a `Monitor` did since it started: inputs read, late ones, records written."""

    decisions: int = 0
    labelled: int = 0
    late: int = 0
    windows: int = 0
    alerts: int = 0


class Monitor(Stage[MonitorStats]):
    """Monitors application `app` (see the module docstring); `profiles` gives the training
    profile of a (model, version) (`loopline.monitor.baselines.profiles_from`), `test_auc`
    its test AUC. `alerts`: the rules (default: the application's ``App.alerts``, else
    `DEFAULT_ALERTS`); `on_alert`: called with each alert once it is committed;
    `sources`: the source topics counted in feed windows and whose freshness is judged
    (default: the features'); `groups`: the consumer groups whose lag on them is written
    (default: the feature processor's).
    """

    name = "monitor"

    def __init__(
        self,
        log: Log,
        app: App,
        profiles: Profiles | None = None,
        registry: SchemaRegistry | None = None,
        *,
        test_auc: TestAuc | None = None,
        alerts: Sequence[Alert] | None = None,
        on_alert: Sequence[Callable[[AlertRecord], None]] = (),
        sources: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        windows: Sequence[str] = ("1m", "1h"),
        segment: str | None = None,
        lateness: str = "5s",
        instance: str = "0",
        commit_interval: float = 0.5,
        max_batch: int = 5_000,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.log, self.app, self.segment = log, app, segment
        self.sizes = [parse_duration(w) or 0 for w in windows]
        if not self.sizes or min(self.sizes) <= 0:
            raise ValueError(f"monitor windows must be durations such as 1m or 1h, not {windows!r}")
        self.lateness = parse_duration(lateness) or 0
        self._judged = min(self.sizes)  # alerts judge the shortest windows
        self.decisions_topic, self.labelled_topic = (
            names.decisions(app.name),
            names.labelled(app.name),
        )
        self.sources = tuple(app.features.sources if sources is None else sources)
        if groups is None:
            fingerprint = app.features.fingerprint()
            groups = [names.features_group(app.name, fingerprint)] if app.features.sources else []
        self.lags = GroupLags(log, groups)
        self.topics = (self.decisions_topic, self.labelled_topic, *self.sources)
        self.output, self.changelog = names.monitor(app.name), names.monitor_changelog(app.name)
        self.alerts_topic = names.alerts(app.name)
        if alerts is None:  # the application's rules, else the defaults
            alerts = DEFAULT_ALERTS if app.alerts is None else app.alerts
        self.alerting = Alerting(app.name, self.alerts_topic, alerts, on_alert)
        self.test_auc = test_auc or (lambda model, version: None)
        self.clock = clock or wall_clock
        self.profiles = profiles or (lambda model, version: None)
        self.stats = MonitorStats()
        if isinstance(registry, LogRegistry):
            monitor_topic(app.name).create(log, registry)  # and bind loopline.monitor
        for topic, config in (
            (self.decisions_topic, TopicConfig()),
            (self.labelled_topic, TopicConfig()),
            (self.output, TopicConfig()),
            (self.alerts_topic, TopicConfig()),
            (self.changelog, TopicConfig(compact=True)),
            (dlq_topic(self.decisions_topic), TopicConfig()),
            (dlq_topic(self.labelled_topic), TopicConfig()),
        ):
            with contextlib.suppress(TopicExists):
                log.create_topic(topic, config)
        self._decode = {
            self.decisions_topic: decoder(registry, self.decisions_topic, Decision),
            self.labelled_topic: decoder(registry, self.labelled_topic, LabelledExample),
        }
        self.states = PartitionedState(log, Codec(), lambda unit: TopicPartition(self.changelog, 0))
        self._baselines: dict[tuple[str, int], Baseline] = {}
        self._defaults = {n: app.features[n].default for n in app.features.names()}
        self._encode = msgspec.json.Encoder().encode
        self.runner = Runner(
            log,
            self,
            group=names.monitor_group(app.name),
            instance=instance,
            commit_interval=commit_interval,
            max_batch=max_batch,
        )

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_caught_up: bool = False,
        on_commit: Callable[[Monitor], None] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> MonitorStats:
        """Monitor until `stop` is set (or, with `until_caught_up`, nothing is left to read)."""
        if clock is not None:
            self.clock = clock
        return super().run(stop, until_caught_up=until_caught_up, on_commit=on_commit)

    def baseline(self, model: str, version: int) -> Baseline:
        found = self._baselines.get((model, version))
        if found is None:
            found = self._baselines[(model, version)] = Baseline(
                self.profiles(model, version), self._defaults, self.test_auc(model, version)
            )
        return found

    # -- counting -------------------------------------------------------------------------

    def process(self, records: list[Record], context: Context) -> None:
        state = self.states.get(0)
        decisions: list[Decision] = []  # counted column-wise once the batch is read
        with collector_paused():  # a batch's decoded records are acyclic (see the module)
            for record in records:
                decode, contract = self._decode.get(record.topic, (_raw, None))
                try:
                    value = decode(record.value)
                except ContractViolation as exc:
                    context.dead_letter(record, str(exc), contract)
                    continue
                if record.topic == self.decisions_topic:
                    decisions.append(value)
                elif record.topic != self.labelled_topic:  # a source topic: only its times
                    self._source(state, record.topic, record.timestamp)
                else:
                    self._labelled(state, value)
            self.stats.decisions += len(decisions)
            self.stats.late += count_decisions(
                state, decisions, self.sizes, self.lateness, self.segment, self.baseline
            )
        self._close(context, state)
        self.states.changed(0)

    def _advance(self, state: MonitorState, source: str, at: int) -> int:
        mark = state.watermark.get(source)
        if mark is None or at - self.lateness > mark:
            mark = state.watermark[source] = at - self.lateness
            state.changed.add(WATERMARK + source)
        return mark

    def _source(self, state: MonitorState, topic: str, at: int) -> None:
        source = state.sources.get(topic)
        if source is None:
            source = state.sources[topic] = SourceState()
        before = source.newest
        source.add(at)
        state.changed.add(SOURCE + topic)
        mark = self._advance(state, FEEDS, at)
        for size in self.sizes:
            start = window_start(at, size)
            if start + size <= mark:
                self.stats.late += 1
                continue
            w = self._feed_window(state, WindowKey(FEEDS, size, start, topic, 0, "", ""), before)
            w.records += 1
            w.newest = max(w.newest, at)

    def _feed_window(self, state: MonitorState, key: WindowKey, newest: int) -> FeedWindow:
        w = state.windows.get(key)
        if w is None:  # the newest record seen before this window began, if any
            w = state.windows[key] = FeedWindow(
                newest=newest if newest < key.start + key.size else 0
            )
        state.changed.add(key)
        return w  # type: ignore[return-value]

    def _labelled(self, state: MonitorState, e: LabelledExample) -> None:
        self.stats.labelled += 1
        mark = self._advance(state, "labelled", e.closed_at)
        for size in self.sizes:
            start = window_start(e.closed_at, size)
            if start + size <= mark:
                self.stats.late += 1
                continue
            key = WindowKey("labelled", size, start, e.model, e.model_version, e.arm, "")
            w = state.windows.get(key)
            if w is None:
                w = state.windows[key] = LabelWindow()
            state.changed.add(key)
            w.labels += 1
            w.label_sum += e.label
            if e.score is not None and e.score == e.score:
                w.pairs.append((e.score, e.label))

    # -- closing windows ------------------------------------------------------------------

    def tick(self, context: Context, caught_up: bool) -> None:
        """Once everything is read, the clock closes the windows it has passed."""
        if not caught_up or not context.owned:
            return
        state = self.states.get(0)
        now = self.clock()
        for source in ("decisions", "labelled", FEEDS):
            self._advance(state, source, now)
        mark = state.watermark[FEEDS]
        for topic, source in state.sources.items():  # a silent source gets its windows too
            for size in self.sizes:
                start = window_start(now, size)
                key = WindowKey(FEEDS, size, start, topic, 0, "", "")
                if start + size > mark and key not in state.windows:
                    self._feed_window(state, key, source.newest)
        changed = self._close(context, state)
        changed += self.alerting.freshness(context, state, self.sources, now)
        if changed:
            self.states.changed(0)

    def _close(self, context: Context, state: MonitorState) -> int:
        due = [
            k for k in state.windows if k.start + k.size <= state.watermark.get(k.source, k.start)
        ]
        due.sort(
            key=lambda k: (
                k.start + k.size,
                k.size,
                k.source,
                k.model,
                k.model_version,
                k.arm,
                k.segment,
            )
        )
        self.lags.refresh()  # the groups' offsets are read once for the windows closing now
        for key in due:
            window = state.windows.pop(key)
            state.changed.add(key)
            if isinstance(window, FeedWindow):
                record = feed_record(key, window, self.lags.lags(key.model))
                context.send(
                    self.output, self._encode(record), record.key.encode(),
                    timestamp=record.end, partition=0,
                )  # fmt: skip
                metrics.observe_feed(self.app.name, record)
                self.stats.windows += 1
                continue
            baseline = self.baseline(key.model, key.model_version)
            if isinstance(window, DecisionWindow):
                record = decision_record(key, window, baseline)
            else:
                record = label_record(key, window, baseline)
            context.send(
                self.output,
                self._encode(record),
                record.key.encode(),
                timestamp=record.end,
                partition=0,
            )
            metrics.observe(self.app.name, record)
            self.stats.windows += 1
            if key.size == self._judged:
                self.alerting.window(context, state, record, baseline.test_auc)
        return len(due)

    # -- committing -----------------------------------------------------------------------

    def checkpoint(self, context: Context) -> None:
        self.states.write(
            lambda topic, value, key, partition: context.send(
                topic, value, key, partition=partition
            )
        )

    def committed(self) -> None:
        """Tell the hooks (the webhook) of the alerts just committed."""
        self.stats.alerts = self.alerting.sent
        self.alerting.committed(self.states.get(0) if 0 in self.states else None)

    def revoke(self, partitions: set[TopicPartition]) -> None:
        self.states.clear()  # one state for every partition: restored again when needed

    def reset(self) -> None:
        self.states.clear()
        self.alerting.reset()
