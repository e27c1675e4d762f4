"""The online trainer as a task on the stream runtime: what `train_online` runs.

`OnlineLearning` learns batch after batch from the labelled topic (the
composed batch path once the trainer knows its features, else one example
at a time), publishes a version every so many examples or seconds, and
commits the offsets that version records. See `loopline.models.online`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopline.app import App
from loopline.contracts.codecs import ContractViolation
from loopline.log import Log, Record, TopicPartition
from loopline.models.declarations import Model
from loopline.models.evaluation import DataError, evaluate
from loopline.models.online_versions import (
    OnlineVersion,
    manifest,
    previous_version,
    recorded_progress,
)
from loopline.models.registry import ModelRegistry
from loopline.models.trainers import FORMATS, Trainer, load_trainer
from loopline.models.trainers.data import one_label
from loopline.models.training import TrainingError
from loopline.models.training_examples import Progress
from loopline.models.training_learners import (
    batch_learner,
    batch_reader,
    chooser,
    extractor,
    learner,
    scorer,
)
from loopline.stream.runner import Runner
from loopline.stream.task import Context, Task, TaskStats

__all__ = ["OnlineLearning", "OnlineStats"]


@dataclass
class OnlineStats(TaskStats):
    """What one `train_online` run did (`records` read, `examples` learned)."""

    examples: int = 0  # learned in this run
    versions: list[OnlineVersion] = field(default_factory=list)
    resumed_from: int | None = None  # the version this run went on from


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "float"


class OnlineLearning(Task):
    """One online training run as a task on the stream runtime: the trainer and what
    it learned. Not transactional: its checkpoint is a published version, after
    which it commits the offsets that version records (see the module docstring)."""

    name = "train-online"

    def __init__(
        self,
        log: Log,
        app: App,
        model: Model,
        topic: str,
        registry: ModelRegistry,
        trainer: Trainer,
        group: str,
        alias: str | None,
    ) -> None:
        self.log, self.app, self.model, self.topic = log, app, model, topic
        self.topics = (topic,)
        self.registry, self.trainer, self.group, self.alias = registry, trainer, group, alias
        self.stats = OnlineStats()
        self.validate_every = 10
        self.plain_json = True  # the topic holds JSON, not records of a contract
        self.on_publish: Callable[[OnlineVersion], None] | None = None
        self.decode: Callable[[bytes | None], dict[str, Any] | None] = lambda v: None
        self.progress: Progress | None = None
        self.every_examples, self.every_seconds = 10_000, 60.0
        self.ends: dict[int, int] = {}
        self.starts: dict[int, int] = {}
        self.next: dict[int, int] = {}
        self.total = 0
        self.names: tuple[str, ...] | None = None
        self.kinds: dict[str, str] = {}
        self.window = 0
        self.labels: list[float] = []
        self.scores: list[float] = []
        self.last_version: int | None = None
        self.composed: tuple | None = None  # (batch reader, batch learner) once known; () if none
        self.published_at = time.monotonic()
        self.extract: Callable[[Mapping[str, Any]], tuple[Any, Any]] | None = None
        self.runner = Runner(log, self, group=group, transactional=False, max_batch=10_000)
        self.context = self.runner.context

    def resume(self) -> None:
        """Go on from the last version this trainer published, or start at the beginning."""
        consumer = self.runner.consumer
        info = {p.partition: p for p in self.log.describe_topic(self.topic).partitions}
        previous = previous_version(self.registry, self.model.name, self.topic, self.group)
        if previous is not None:
            artifact = self.registry.load_artifact(previous)  # verified, or UntrustedModel
            known = previous.format in FORMATS
            self.trainer = load_trainer(
                artifact, previous.format, trainer_class=None if known else type(self.trainer)
            )
            progress = recorded_progress(previous.manifest or {})
            self.starts, self.next, self.total = progress.starts, progress.ends, progress.total
            self.names = tuple(previous.feature_names) or None
            self.kinds = dict(previous.features)
            self.stats.resumed_from = self.last_version = previous.version
        for tp in consumer.assignment():
            at = self.next.get(tp.partition, info[tp.partition].start)
            self.starts.setdefault(tp.partition, at)
            self.next[tp.partition] = at
            consumer.seek(tp, at)
        self.learn, self.score = learner(self.trainer), scorer(self.trainer)
        self.choose = chooser(self.app, self.model)
        self.extract = extractor(self.names, self.model) if self.names is not None else None
        self.published_at = time.monotonic()

    def process(self, records: list[Record], context: Context) -> None:
        """Learn a batch: by the composed batch path once known, else one by one."""
        if self.composed is None:  # the first example says what the rest look like
            records = self._learn_each(records, self.decode, until_composed=True)
        if self.composed:
            read_batch, learn_batch = self.composed
            batch = read_batch([r.value for r in records]) if records else None
            if batch is not None:
                self._learn_batch(records, *batch, learn_batch)
                return
        self._learn_each(records, self.decode)

    def tick(self, context: Context, caught_up: bool) -> None:
        """Publish when the window is full or old enough; report progress."""
        if self.window >= self.every_examples or (
            self.window and time.monotonic() - self.published_at >= self.every_seconds
        ):
            self.publish()
        if self.progress is not None:
            self.progress(f"learn from {self.topic}", self.stats.examples + self.window, None)

    def caught_up(self, context: Context) -> bool:
        """Every example present when the run started has been learned."""
        return all(context.position(tp) >= self.ends.get(tp.partition, 0) for tp in context.owned)

    def _learn_batch(
        self,
        records: list[Record],
        xs: list[dict[str, float]],
        ys: list[Any],
        learn: Callable[[list[dict[str, float]], list[Any]], None],
    ) -> None:
        """Learn a batch the batch path read; validate the examples at window positions
        0, k, 2k...; publish whenever the window is full."""
        k, score, n, i = self.validate_every, self.score, len(xs), 0
        while i < n:
            end = min(n, i + self.every_examples - self.window)
            j = i
            if k:
                v = j + (i - self.window - j) % k  # the first example here at a multiple of k
                while v < end:
                    learn(xs[j:v], ys[j:v])
                    self.scores.append(score(xs[v]))
                    self.labels.append(float(ys[v]))
                    j, v = v, v + k
            learn(xs[j:end], ys[j:end])
            self.window += end - i
            i = end
            if self.window >= self.every_examples:
                _advance(self.next, records[:i])
                self.publish()
        _advance(self.next, records)

    def _learn_each(
        self,
        records: list[Record],
        decode: Callable[[bytes | None], dict[str, Any] | None],
        *,
        until_composed: bool = False,
    ) -> list[Record]:
        """Learn the records one by one; an example that cannot be learned is a dead letter.

        `until_composed`: stop once the batch path is composed (after the first
        example learned) and return the records not yet learned, for it.
        """
        k, task, label_field = self.validate_every, self.trainer.task, self.model.label
        for i, record in enumerate(records):
            self.next[record.partition] = record.offset + 1
            if record.value is None:
                continue  # a tombstone is no example
            try:
                row = decode(record.value) or {}
                if self.extract is None:
                    self._first(self.choose(row), row)
                    self.extract = extractor(self.names, self.model)
                x, label = self.extract(row)
                if k and self.window % k == 0:
                    truth = one_label(task, label)
                    self.scores.append(self.score(x))
                    self.labels.append(truth)
                self.learn(x, label)
            except TrainingError:
                raise
            except (ContractViolation, DataError, KeyError, TypeError, ValueError) as exc:
                self.context.dead_letter(record, _reason(exc, label_field, self.names))
                continue
            if self.composed is None:  # the trainer now knows its features: compose
                nested = isinstance(row.get("features"), dict)
                read = batch_reader(
                    self.trainer, self.names, label_field, nested=nested, plain_json=self.plain_json
                )
                self.composed = (read, batch_learner(self.trainer, self.names)) if read else ()
                if until_composed:
                    self._counted()
                    return records[i + 1 :]
            self._counted()
        return []

    def _counted(self) -> None:
        """One more example learned: publish when the window is full."""
        self.window += 1
        if self.window >= self.every_examples:
            self.publish()

    def _first(self, names: tuple[str, ...], row: Mapping[str, Any]) -> None:
        declared = self.model.features
        self.names = tuple(declared) if declared is not None else names
        nested = row.get("features")
        source = nested if isinstance(nested, Mapping) else row
        if not self.names:
            raise TrainingError(
                f"the first example of topic {self.topic!r} has no numeric features: declare "
                f"features= on model {self.model.name!r}"
            )
        self.kinds = {n: _kind(source.get(n)) for n in self.names}

    def publish(self) -> None:
        """Publish what was learned, then commit the offsets it was learned up to."""
        metrics: dict[str, float] = {}
        if self.labels and self.trainer.task != "ranking":
            with contextlib.suppress(DataError):  # e.g. one class in this window
                metrics = evaluate(self.trainer.task, self.labels, self.scores)
        self.total += self.window
        self.stats.examples += self.window
        artifact, format = self.trainer.save()
        # a restart goes on from this version's offsets: the dead letters of the examples
        # it passed over are durable first, or a kill -9 between the two would lose them
        self.context.flush()
        names = self.names or tuple(getattr(self.trainer, "features", ()) or ())
        version = self.registry.publish(
            self.model.name,
            artifact,
            format=format,
            trainer=self.trainer.name,
            params=self.trainer.params(),
            features=[(n, self.kinds.get(n, "float")) for n in names],
            metrics=metrics,
            manifest=manifest(
                app=self.app.name,
                topic=self.topic,
                group=self.group,
                starts=self.starts,
                ends=self.next,
                total=self.total,
                window=self.window,
                validated=len(self.labels),
                validate_every=self.validate_every,
                dead_letters=self.stats.dead_letters,
                previous=self.last_version,
            ),
        )
        if self.alias is not None:
            self.registry.promote(
                self.model.name, version.version, self.alias, reason="loopline train --online"
            )
        self.context.commit({TopicPartition(self.topic, p): o for p, o in self.next.items()})
        published = OnlineVersion(version, self.window, self.total, metrics, len(self.labels))
        self.stats.versions.append(published)
        self.last_version = version.version
        self.window = 0
        self.labels, self.scores = [], []
        self.published_at = time.monotonic()
        if self.on_publish is not None:
            self.on_publish(published)


def _advance(offsets: dict[int, int], records: list[Record]) -> None:
    """Set each partition's next offset past the last of `records` it has."""
    seen: set[int] = set()
    for record in reversed(records):
        if record.partition not in seen:
            seen.add(record.partition)
            offsets[record.partition] = record.offset + 1


def _reason(exc: Exception, label: str, names: tuple[str, ...] | None) -> str:
    """Why an example cannot be learned, for its dead letter."""
    if isinstance(exc, KeyError):
        missing = exc.args[0] if exc.args else "?"
        if missing == label:
            return f"the example has no label field {label!r}"
        return f"the example lacks feature {missing!r}; the model learns {', '.join(names or ())}"
    return f"the example cannot be learned: {exc}"
