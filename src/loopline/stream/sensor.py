"""One metrics interface the runner calls, whatever the task (Faust's `Sensor`).

The runner reports what every stage has in common (records read per topic,
dead letters, commits and their duration, aborts, lag) to its sensors: the
task's `TaskStats` (what ``run`` returns and the CLI prints) and Prometheus
(``loopline_stream_*``, labelled by task and consumer group). What only one
stage knows (late records, freshness, labelled examples) stays its own metric.

>>> from loopline.stream.task import TaskStats
>>> stats = TaskStats()
>>> sensor = StatsSensor(stats)
>>> sensor.records("clicks", 3); sensor.committed(0.01)
>>> stats.records, stats.commits
(3, 1)
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from loopline.stream.task import TaskStats

__all__ = ["PrometheusSensor", "Sensor", "Sensors", "StatsSensor"]

RECORDS = Counter(
    "loopline_stream_records",
    "Input records a stage processed (dead letters included).",
    ["task", "group", "topic"],
)
DEAD_LETTERS = Counter(
    "loopline_stream_dead_letters",
    "Input records set aside on <topic>.dlq with the reason.",
    ["task", "group", "topic"],
)
COMMITS = Counter(
    "loopline_stream_commits",
    "Transactions committed: outputs, state changes and input offsets together.",
    ["task", "group"],
)
COMMIT_SECONDS = Histogram(
    "loopline_stream_commit_seconds",
    "Time to write the state changes and commit one transaction.",
    ["task", "group"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ABORTS = Counter(
    "loopline_stream_aborts",
    "Transactions aborted (a failed commit, a fenced producer, a lost partition): "
    "the stage rewound to its committed offsets.",
    ["task", "group"],
)
LAG = Gauge(
    "loopline_stream_lag",
    "Records not yet read in the partitions this member owns.",
    ["task", "group"],
)


class Sensor(Protocol):
    """What the runner reports; every method is called on the runner's thread."""

    def records(self, topic: str, n: int) -> None: ...

    def dead_letter(self, topic: str) -> None: ...

    def committed(self, seconds: float) -> None: ...

    def aborted(self) -> None: ...

    def lag(self, n: int) -> None: ...


class StatsSensor:
    """Counts into a task's `TaskStats`."""

    def __init__(self, stats: TaskStats) -> None:
        self.stats = stats

    def records(self, topic: str, n: int) -> None:
        self.stats.records += n

    def dead_letter(self, topic: str) -> None:
        self.stats.dead_letters += 1

    def committed(self, seconds: float) -> None:
        self.stats.commits += 1

    def aborted(self) -> None:
        self.stats.aborts += 1

    def lag(self, n: int) -> None:
        return None


class PrometheusSensor:
    """The ``loopline_stream_*`` metrics of one task in one consumer group."""

    def __init__(self, task: str, group: str) -> None:
        self._labels = (task, group)
        self._records: dict[str, Counter] = {}
        self._dead: dict[str, Counter] = {}
        self._commits = COMMITS.labels(task, group)
        self._seconds = COMMIT_SECONDS.labels(task, group)
        self._aborts = ABORTS.labels(task, group)
        self._lag = LAG.labels(task, group)

    def records(self, topic: str, n: int) -> None:
        counter = self._records.get(topic)
        if counter is None:
            counter = self._records[topic] = RECORDS.labels(*self._labels, topic)
        counter.inc(n)

    def dead_letter(self, topic: str) -> None:
        counter = self._dead.get(topic)
        if counter is None:
            counter = self._dead[topic] = DEAD_LETTERS.labels(*self._labels, topic)
        counter.inc()

    def committed(self, seconds: float) -> None:
        self._commits.inc()
        self._seconds.observe(seconds)

    def aborted(self) -> None:
        self._aborts.inc()

    def lag(self, n: int) -> None:
        self._lag.set(n)


class Sensors:
    """Several sensors as one."""

    def __init__(self, *sensors: Sensor) -> None:
        self._sensors = sensors

    def records(self, topic: str, n: int) -> None:
        for s in self._sensors:
            s.records(topic, n)

    def dead_letter(self, topic: str) -> None:
        for s in self._sensors:
            s.dead_letter(topic)

    def committed(self, seconds: float) -> None:
        for s in self._sensors:
            s.committed(seconds)

    def aborted(self) -> None:
        for s in self._sensors:
            s.aborted()

    def lag(self, n: int) -> None:
        for s in self._sensors:
            s.lag(n)
