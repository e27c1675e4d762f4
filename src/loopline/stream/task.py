"""What a stage is to the runtime: a `Task`, and the `Context` it works through.

A task says which topics it reads and what it does with a batch of their
records; the `Runner` (``loopline.stream.runner``) does everything else. A
task never polls, begins or commits a transaction, follows an assignment or
rewinds after a failure: it sends its outputs through the `Context`, keeps
its state where the runner can ask for it (`checkpoint`, `revoke`, `reset`),
and the runner commits outputs, state changes and input offsets together.

>>> class Upper(Task):
...     name, topics = "upper", ("words",)
...     def process(self, records, context):
...         for r in records:
...             context.send("loud", r.value.upper(), r.key)
>>> Upper().co_partitioned
False
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from loopline.log import Headers, Record, TopicPartition

__all__ = ["Context", "Task", "TaskStats"]


@dataclass
class TaskStats:
    """What a runner did for its task since it started; a task's own stats extend it."""

    records: int = 0
    dead_letters: int = 0
    commits: int = 0
    aborts: int = 0


class Context(Protocol):
    """How a task acts on the log while the runner runs it."""

    owned: frozenset[TopicPartition]
    """The input partitions this member processes now (paused half-owned ones excluded)."""

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        timestamp: int | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> None:
        """Write an output record; it becomes visible with the next commit."""
        ...

    def dead_letter(
        self, record: Record, reason: str, contract: tuple[str, int] | None = None
    ) -> None:
        """Set `record` aside on ``<topic>.dlq`` with `reason`, counted, in the same commit."""
        ...

    def lag(self) -> int:
        """Records not yet read in the owned partitions."""
        ...

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record the runner will read from `partition`."""
        ...

    def flush(self) -> None:
        """Make everything sent so far durable now, before a checkpoint that passes it (a
        task that checkpoints by itself: see `Runner`; a transactional runner's commit
        does this)."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store `offsets` for the group now (a task that checkpoints by itself: see `Runner`)."""
        ...


class Task:
    """A stage run by a `Runner`. Subclasses set `name` and `topics` and override `process`.

    `co_partitioned`: partition p of every input topic is processed together
    (a join). The runner then processes only partition numbers this member
    owns on every input topic, pausing the others until it does.

    The hooks, in the order the runner calls them:

    - `process(records, context)`: a batch of records of owned partitions;
    - `tick(context, caught_up)`: after every poll, with `caught_up` true when
      nothing was read and nothing is left to read (close windows by the clock);
    - `checkpoint(context)`: just before a commit: send the state changes
      (`loopline.stream.state.PartitionedState.write`);
    - `committed()`: after a commit succeeded (metrics);
    - `revoke(partitions)`: partitions this member no longer owns: drop their state;
    - `reset()`: a commit failed: drop all state, the runner rewinds to the
      committed offsets and the task restores from its changelog as it goes.
    """

    name: str = "task"
    topics: Sequence[str] = ()
    co_partitioned: bool = False
    stats: TaskStats

    def process(self, records: list[Record], context: Context) -> None:
        raise NotImplementedError

    def tick(self, context: Context, caught_up: bool) -> None:
        return None

    def caught_up(self, context: Context) -> bool:
        """Whether `run(until_caught_up=True)` may stop: by default, no lag is left."""
        return context.lag() == 0

    def checkpoint(self, context: Context) -> None:
        return None

    def committed(self) -> None:
        return None

    def revoke(self, partitions: set[TopicPartition]) -> None:
        return None

    def reset(self) -> None:
        return None
