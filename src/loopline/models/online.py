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

import threading
from collections.abc import Callable

from loopline.app import App
from loopline.contracts.registry import SchemaRegistry
from loopline.features.offline.pinned import pin
from loopline.features.sources import SourceReader
from loopline.log import Log
from loopline.models.declarations import Model
from loopline.models.online_learning import OnlineLearning, OnlineStats
from loopline.models.online_versions import OnlineVersion
from loopline.models.registry import ModelRegistry
from loopline.models.trainers import OnlineTrainer
from loopline.models.training import TrainingError, check_signer, new_trainer
from loopline.models.training_examples import Progress
from loopline.stream import names

__all__ = ["OnlineStats", "OnlineVersion", "check_online", "default_group", "train_online"]


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
