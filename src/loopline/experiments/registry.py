"""Experiments kept on the log: start, change, stop, conclude, roll back, and follow them.

`ExperimentRegistry` reads the compacted topic ``_loopline_experiments`` to its
end (a `loopline.stream.table.Table`) and appends one whole `Experiment`
record per change (`loopline.experiments.records`). A record whose revision
is not the next one of its experiment lost a race (two writers changed the
same revision) and is void; a record that does not decode is logged, counted
in ``table.skipped`` and passed over. Every process that reads the topic
therefore sees the same history in the same order. A serving process calls
`refresh` (or `follow`) to apply changes as they land.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.experiments.records import Arm, Experiment
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = ExperimentRegistry(log)
>>> arms = (Arm("control", alias="production", weight=0.9, control=True), Arm("v2", version=2, weight=0.1))
>>> started = registry.start(Experiment(name="ranker-v2", model="ranker", arms=arms), reason="try v2")
>>> started.revision, started.state, len(started.salt)
(1, 'running', 32)
>>> registry.set_weights("ranker-v2", {"control": 0.5, "v2": 0.5}, reason="ramp").weights
{'control': 0.5, 'v2': 0.5}
>>> stopped = registry.stop("ranker-v2", reason="enough")
>>> [(e.revision, e.state, e.reason) for e in registry.history("ranker-v2")]
[(1, 'running', 'try v2'), (2, 'running', 'ramp'), (3, 'stopped', 'enough')]
>>> registry.running("ranker") is None
True
>>> registry.close(); log.close()
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping

import msgspec

from loopline.experiments.records import (
    Experiment,
    ExperimentError,
    Verdict,
    change_key,
    check,
    decode,
    encode,
)
from loopline.log import Log, Record, TopicConfig, TopicExists
from loopline.models.registry_records import who
from loopline.stream import names
from loopline.stream.table import Table

__all__ = [
    "EXPERIMENTS_TOPIC",
    "ExperimentConflict",
    "ExperimentNotFound",
    "ExperimentRegistry",
]

EXPERIMENTS_TOPIC = names.internal("experiments")


class ExperimentNotFound(ExperimentError):
    """No experiment of that name is on the log."""


class ExperimentConflict(ExperimentError):
    """Someone else changed the experiment first; read it again and decide again."""


class ExperimentRegistry:
    """Every experiment on `topic` and its history (see the module docstring)."""

    def __init__(self, log: Log, *, topic: str = EXPERIMENTS_TOPIC) -> None:
        self.log = log
        self.topic = topic
        with contextlib.suppress(TopicExists):
            log.create_topic(topic, TopicConfig(partitions=1, compact=True))
        self._lock = threading.RLock()
        self._history: dict[str, list[Experiment]] = {}
        self._changes: list[Experiment] = []
        self._cursor = 0
        self.table = Table(log, topic, self._apply)
        try:
            self._producer = log.producer()
        except BaseException:
            self.table.close()  # (its consumer would wait for the garbage collector)
            raise
        try:
            self.table.refresh()
        except BaseException:
            self.close()
            raise

    # -- reading ---------------------------------------------------------------------------

    def _apply(self, record: Record) -> None:
        if record.value is None:
            return  # a tombstone deletes nothing here: history is kept
        experiment = decode(record.value)
        history = self._history.setdefault(experiment.name, [])
        if experiment.revision != len(history) + 1:
            return  # lost a race for this revision: void
        history.append(experiment)
        self._changes.append(experiment)

    def refresh(self) -> list[Experiment]:
        """Read what was appended since; return the changes since the last `refresh` call."""
        with self._lock:
            self.table.refresh()
            new = self._changes[self._cursor :]
            self._cursor = len(self._changes)
            return new

    def follow(
        self,
        callback: Callable[[Experiment], None],
        *,
        stop: threading.Event | None = None,
        interval: float = 0.25,
    ) -> None:
        """Call `callback` with every change, in log order, until `stop` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            for change in self.refresh():
                callback(change)
            stop.wait(interval)

    def get(self, name: str) -> Experiment:
        """The experiment called `name` as it is now."""
        with self._lock:
            history = self._history.get(name)
            if not history:
                known = ", ".join(sorted(self._history)) or "none"
                raise ExperimentNotFound(
                    f"no experiment {name!r} on {self.topic!r} (experiments: {known}); "
                    "`loopline experiments list` shows them"
                )
            return history[-1]

    def list(self) -> list[Experiment]:
        """Every experiment as it is now, by name."""
        with self._lock:
            return [h[-1] for _, h in sorted(self._history.items())]

    def history(self, name: str) -> list[Experiment]:
        """Every revision of experiment `name`, oldest first."""
        self.get(name)
        with self._lock:
            return list(self._history[name])

    def running(self, model: str) -> Experiment | None:
        """The experiment running on `model`, if one is."""
        with self._lock:
            for history in self._history.values():
                if history[-1].model == model and history[-1].state == "running":
                    return history[-1]
        return None

    # -- changing --------------------------------------------------------------------------

    def start(self, experiment: Experiment, *, reason: str = "started") -> Experiment:
        """Start `experiment` (revision 1; a salt is drawn when it has none)."""
        check(experiment)
        with self._lock:
            self.table.refresh()
            if experiment.name in self._history:
                raise ExperimentError(
                    f"an experiment {experiment.name!r} exists already "
                    f"({self._history[experiment.name][-1].state}): choose another name"
                )
            if (other := self.running(experiment.model)) is not None:
                raise ExperimentError(
                    f"experiment {other.name!r} is running on model {experiment.model!r}: "
                    f"stop or conclude it first (`loopline experiments stop {other.name}`)"
                )
            first = msgspec.structs.replace(
                experiment,
                salt=experiment.salt or uuid.uuid4().hex,
                state="running",
                revision=0,
            )
            return self._write(first, reason, None)

    def change(
        self,
        name: str,
        *,
        reason: str,
        expected: int | None = None,
        verdict: Verdict | None = None,
        **fields: object,
    ) -> Experiment:
        """Write the next revision of `name` with `fields` changed.

        With `expected`, only if the experiment is still at that revision
        (`ExperimentConflict` if not): an automatic change must not undo a
        person's stop it did not see.
        """
        with self._lock:
            self.table.refresh()
            current = self.get(name)
            if expected is not None and current.revision != expected:
                raise ExperimentConflict(
                    f"experiment {name!r} is at revision {current.revision}, not {expected}: "
                    f"it changed ({current.reason!r}); read it again"
                )
            changed = msgspec.structs.replace(current, **fields)
            check(changed)
            return self._write(changed, reason, verdict)

    def set_weights(
        self, name: str, weights: Mapping[str, float], *, reason: str, **kwargs: object
    ) -> Experiment:
        """Give the arms of `name` new weights (arms left out keep theirs)."""
        current = self.get(name)
        for arm in weights:
            current.arm(arm)
        arms = tuple(
            msgspec.structs.replace(a, weight=float(weights.get(a.name, a.weight)))
            for a in current.arms
        )
        return self.change(name, reason=reason, arms=arms, **kwargs)  # type: ignore[arg-type]

    def stop(self, name: str, *, reason: str, **kwargs: object) -> Experiment:
        """Stop `name`: every request goes back to what the model's alias serves."""
        return self._end(name, "stopped", reason, **kwargs)

    def conclude(self, name: str, *, reason: str, **kwargs: object) -> Experiment:
        """Mark `name` concluded (moving an alias to the winner is the caller's decision)."""
        return self._end(name, "concluded", reason, **kwargs)

    def roll_back(self, name: str, *, reason: str, **kwargs: object) -> Experiment:
        """Roll `name` back: its treatments stop and every request goes to the alias."""
        return self._end(name, "rolled_back", reason, **kwargs)

    def _end(self, name: str, state: str, reason: str, **kwargs: object) -> Experiment:
        current = self.get(name)
        if current.state != "running":
            raise ExperimentError(
                f"experiment {name!r} is {current.state.replace('_', ' ')} already "
                f"({current.reason!r}); it cannot be {state.replace('_', ' ')}"
            )
        return self.change(name, reason=reason, state=state, **kwargs)  # type: ignore[arg-type]

    def _write(self, experiment: Experiment, reason: str, verdict: Verdict | None) -> Experiment:
        record = msgspec.structs.replace(
            experiment,
            revision=experiment.revision + 1,
            reason=reason,
            verdict=verdict,
            changed_at=time.time_ns() // 1_000_000,
            by=who(),
        )
        key = change_key(record.name, record.revision, uuid.uuid4().hex).encode()
        self._producer.send(self.topic, encode(record), key)
        self._producer.flush()
        self.table.refresh()
        held = self._history[record.name][record.revision - 1]
        if held != record:
            raise ExperimentConflict(
                f"experiment {record.name!r} revision {record.revision} was written by "
                f"{held.by} first ({held.reason!r}); read it again"
            )
        return record

    def close(self) -> None:
        self.table.close()
        self._producer.close()
