"""A `Stage`: a task that owns its runner, as every long-running stage of the loop does.

The feature processor, the outcome joiner, the stream scorer, the experiment
watcher and the monitor are each a `Task` with a `Runner` of their own; a
`Stage` gives them one `run`, `run_until_caught_up` and `close`, so a stage
says only what it does with its records. A stage that must prepare before it
runs (the scorer waits for its model, the joiner takes a clock) overrides
`run` and calls ``super().run``.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.stream.runner import Runner
>>> class Count(Stage[TaskStats]):
...     name, topics = "count", ("words",)
...     def __init__(self, log):
...         self.stats = TaskStats()
...         self.runner = Runner(log, self, group="counters", commit_interval=0)
...     def process(self, records, context):
...         pass  # the runner counts records in `stats`
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("words")
>>> producer = log.producer()
>>> for word in (b"a", b"b", b"c"):
...     producer.send("words", word)
>>> producer.flush()
3
>>> count = Count(log)
>>> count.run_until_caught_up().records
3
>>> count.close(); producer.close(); log.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Self, TypeVar

from loopline.stream.runner import Runner
from loopline.stream.task import Task, TaskStats

__all__ = ["Stage"]

StatsT = TypeVar("StatsT", bound=TaskStats)


class Stage(Task, Generic[StatsT]):
    """A task with its own `runner` (set by the subclass's ``__init__``) and its `stats`."""

    runner: Runner
    stats: StatsT

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_caught_up: bool = False,
        on_commit: Callable[[Self], None] | None = None,
    ) -> StatsT:
        """Run until `stop` is set (or, with `until_caught_up`, until nothing is left to do).

        `on_commit` is called with the stage after every commit.
        """
        self.runner.run(
            stop,
            until_caught_up=until_caught_up,
            on_commit=None if on_commit is None else lambda: on_commit(self),
        )
        return self.stats

    def run_until_caught_up(self) -> StatsT:
        """Do everything present now, commit, and return."""
        return self.run(until_caught_up=True)

    def close(self) -> None:
        """Leave the group (an open transaction is aborted) and release what the stage holds."""
        self.runner.close()
