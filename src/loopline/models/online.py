"""Online learning: a model that learns from the labelled stream and publishes as it goes.

`train_online` is ``loopline train APP --model NAME --online``: it reads the
topic of labelled examples in a consumer group, gives every example to the
trainer's ``learn_one``, and publishes a version every `every_examples`
examples or `every_seconds` seconds (whichever comes first). The model is the
one declared for batch training; only its trainer must learn online (River,
or a scikit-learn estimator with ``partial_fit``).

Each published version is a checkpoint: its manifest records, per
partition, the next offset to learn from, and the group's offsets are
committed after the version is published. A restarted trainer loads the last
version it published (verified) and goes on from exactly the offsets that
version records, so no example is learned twice or skipped, whatever happened
between publishing and committing.

Metrics are progressive validation: every `validate_every`-th example is
scored before it is learned, so the model is always judged on data it has not
seen, which is later data; a version's metrics cover the examples since the
previous version. Examples a model cannot learn from (not JSON, a missing
label or feature, a label of the wrong kind) go to the topic's dead-letter
topic (``<topic>.dlq``) with the reason, and learning goes on.

>>> import json, tempfile
>>> from river import linear_model
>>> from loopline import App
>>> from loopline.log import open_log
>>> from loopline.models import HmacSigner, ModelRegistry
>>> from loopline.models.declarations import Model
>>> from loopline.models.trainers import RiverTrainer
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("examples")
>>> producer = log.producer()
>>> for i in range(250):
...     spend = (i * 37) % 100 / 100
...     example = {"features": {"spend": spend}, "label": spend > 0.5}
...     producer.send("examples", json.dumps(example).encode())
>>> producer.send("examples", b'{"features": {"spend": 0.3}}')  # no label: a dead letter
>>> producer.flush()
251
>>> model = Model("buy", entity="member",
...               trainer=lambda: RiverTrainer(linear_model.LogisticRegression()))
>>> app = App("shop", models=[model])
>>> registry = ModelRegistry(log, signer=HmacSigner(b"a secret of sixteen bytes or more"))
>>> stats = train_online(log, app, "buy", "examples", registry=registry, every_examples=100,
...                      until_caught_up=True)
>>> [(v.version.version, v.examples, v.total) for v in stats.versions]
[(1, 100, 100), (2, 100, 200), (3, 50, 250)]
>>> stats.dead_letters
1
>>> more = train_online(log, app, "buy", "examples", registry=registry, until_caught_up=True)
>>> more.resumed_from, more.examples  # nothing new: it goes on from v3 and learns nothing
(3, 0)
>>> registry.close(); producer.close(); log.close()
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopline import __version__
from loopline.app import App
from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.features.offline.pinned import pin
from loopline.features.sources import SourceReader
from loopline.log import Log, Record, TopicPartition
from loopline.models.declarations import Model
from loopline.models.evaluation import DataError, evaluate
from loopline.models.registry import ModelNotFound, ModelRegistry
from loopline.models.registry_records import ModelVersion
from loopline.models.trainers import FORMATS, OnlineTrainer, Trainer, load_trainer
from loopline.models.trainers.data import one_label
from loopline.models.training import TrainingError, check_signer, new_trainer
from loopline.models.training_examples import Progress
from loopline.models.training_learners import (
    batch_learner,
    batch_reader,
    chooser,
    extractor,
    learner,
    scorer,
)
from loopline.stream import names
from loopline.stream.runner import Runner
from loopline.stream.task import Context, Task, TaskStats

__all__ = ["OnlineStats", "OnlineVersion", "check_online", "default_group", "train_online"]


@dataclass(frozen=True)
class OnlineVersion:
    """A version published by `train_online`: how many examples it learned since the
    previous one and in all, and its progressive-validation metrics over those."""

    version: ModelVersion
    examples: int
    total: int
    metrics: dict[str, float]
    validated: int


@dataclass
class OnlineStats(TaskStats):
    """What one `train_online` run did (`records` read, `examples` learned)."""

    examples: int = 0  # learned in this run
    versions: list[OnlineVersion] = field(default_factory=list)
    resumed_from: int | None = None  # the version this run went on from


def check_online(model: Model) -> OnlineTrainer:
    """A fresh trainer of `model`, or a `TrainingError` if it cannot learn one example at a time.

    >>> from loopline.models.trainers import LightGBMTrainer
    >>> check_online(Model("buy", trainer=LightGBMTrainer, entity="member"))
    Traceback (most recent call last):
    ...
    loopline.models.training.TrainingError: model 'buy' cannot learn online: its trainer (lightgbm) has no learn_one. Use a trainer that learns one example at a time (RiverTrainer, or SklearnTrainer with an estimator that has partial_fit), or train it in batches with --every instead of --online
    """
    trainer = new_trainer(model)
    if not isinstance(trainer, OnlineTrainer):
        raise TrainingError(
            f"model {model.name!r} cannot learn online: its trainer ({trainer.name}) has no "
            "learn_one. Use a trainer that learns one example at a time (RiverTrainer, or "
            "SklearnTrainer with an estimator that has partial_fit), or train it in batches "
            "with --every instead of --online"
        )
    return trainer


def default_group(app: App, model: Model) -> str:
    """The consumer group of a model's online trainer.

    >>> from loopline.models.declarations import Model
    >>> default_group(App("shop"), Model("buy", trainer=object, entity="member"))
    'shop.train.buy'
    """
    return names.trainer_group(app.name, model.name)


def _previous(registry: ModelRegistry, name: str, topic: str, group: str) -> ModelVersion | None:
    """The last version this online trainer (topic and group) published, if any."""
    try:
        versions = registry.versions(name)
    except ModelNotFound:
        return None
    for version in reversed(versions):
        m = version.manifest or {}
        if m.get("kind") == "online" and (m.get("topic"), m.get("group")) == (topic, group):
            return version
    return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "float"


def train_online(
    log: Log,
    app: App,
    model_name: str,
    labelled_topic: str,
    *,
    registry: ModelRegistry,
    every_examples: int = 10_000,
    every_seconds: float = 60.0,
    stop: threading.Event | None = None,
    group: str | None = None,
    alias: str | None = None,
    validate_every: int = 10,
    until_caught_up: bool = False,
    schemas: SchemaRegistry | None = None,
    on_publish: Callable[[OnlineVersion], None] | None = None,
    progress: Progress | None = None,
) -> OnlineStats:
    """Learn model `model_name` from `labelled_topic` until `stop` is set; see the module
    docstring. Returns what this run did.

    `group` defaults to `default_group`. `alias` is moved to every new version.
    `until_caught_up` stops once every example present at the start is learned,
    publishing what was learned since the last version. A `TrainingError` if
    the model's trainer does not learn online.
    """
    application = app
    model = application.model(model_name)
    check_signer(registry, model.name)
    if every_examples < 1 or every_seconds <= 0 or validate_every < 0:
        raise TrainingError(
            "every_examples must be at least 1, every_seconds above 0 and validate_every 0 "
            f"(never) or more; got {every_examples}, {every_seconds} and {validate_every}"
        )
    trainer = check_online(model)
    group = group or default_group(application, model)
    reader = SourceReader(schemas).decoder(labelled_topic)
    binding = getattr(schemas, "binding", None)
    task = OnlineLearning(log, application, model, labelled_topic, registry, trainer, group, alias)
    task.validate_every = validate_every
    task.on_publish = on_publish
    task.plain_json = not (binding and binding(labelled_topic))
    task.decode, task.progress = reader, progress
    task.every_examples, task.every_seconds = every_examples, every_seconds
    try:
        task.resume()
        task.ends = {p.partition: p.end for p in pin(log, labelled_topic).partitions}
        task.runner.run(stop, until_caught_up=until_caught_up)
        if until_caught_up and task.window and task.caught_up(task.runner.context):
            task.publish()
    finally:
        task.runner.close()
    return task.stats


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
        previous = _previous(self.registry, self.model.name, self.topic, self.group)
        if previous is not None:
            artifact = self.registry.load_artifact(previous)  # verified, or UntrustedModel
            known = previous.format in FORMATS
            self.trainer = load_trainer(
                artifact, previous.format, trainer_class=None if known else type(self.trainer)
            )
            recorded = previous.manifest or {}
            for p in recorded.get("partitions", []):
                self.starts[int(p["partition"])] = int(p["start"])
                self.next[int(p["partition"])] = int(p["end"])
            self.total = int(recorded.get("examples", 0))
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
        if self.composed:
            read_batch, learn_batch = self.composed
            batch = read_batch([r.value for r in records])
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
        self, records: list[Record], decode: Callable[[bytes | None], dict[str, Any] | None]
    ) -> None:
        """Learn the records one by one; an example that cannot be learned is a dead letter."""
        k, task, label_field = self.validate_every, self.trainer.task, self.model.label
        for record in records:
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
        partitions = [
            {"partition": p, "start": self.starts.get(p, end), "end": end}
            for p, end in sorted(self.next.items())
        ]
        manifest = {
            "kind": "online",
            "app": self.app.name,
            "topic": self.topic,
            "group": self.group,
            "partitions": partitions,
            "examples": self.total,
            "window": self.window,
            "validated": len(self.labels),
            "validate_every": self.validate_every,
            "dead_letters": self.stats.dead_letters,
            "previous": self.last_version,
            "loopline_version": __version__,
        }
        artifact, format = self.trainer.save()
        names = self.names or tuple(getattr(self.trainer, "features", ()) or ())
        version = self.registry.publish(
            self.model.name,
            artifact,
            format=format,
            trainer=self.trainer.name,
            params=self.trainer.params(),
            features=[(n, self.kinds.get(n, "float")) for n in names],
            metrics=metrics,
            manifest=manifest,
        )
        if self.alias is not None:
            self.registry.promote(
                self.model.name, version.version, self.alias, reason="loopline train --online"
            )
        # dead letters are flushed first: durable before their offsets commit
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
