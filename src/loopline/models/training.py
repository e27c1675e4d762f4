"""Training: from a pinned dataset to a signed model version, once, on a schedule, or again.

`train_once` is what ``loopline train APP --model NAME`` does: read the data
(a spine's dataset, or a topic of labelled examples; see
`loopline.models.training_data`), check it, split it by time, fit the model's
trainer on the earlier part, evaluate it on the later part with the metrics of
its task, and publish the fitted model to the registry with its feature list,
metrics, parameters, data lineage (the manifest) and code version. The version
published is the model that was evaluated, so its metrics describe it exactly.

`loopline.models.schedules.train_every` does the same on a schedule, each time from the newest data;
`loopline.models.online.train_online` learns continuously from the labelled
stream. The model's declaration is the same for all three.

`loopline.models.reproduction.reproduce` trains a published version again
from its manifest, with the steps below.

>>> import json, tempfile
>>> from loopline import App
>>> from loopline.log import open_log
>>> from loopline.models import HmacSigner, ModelRegistry
>>> from loopline.models.declarations import Model
>>> from loopline.models.trainers import LightGBMTrainer
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("examples")
>>> producer = log.producer()
>>> for i in range(400):
...     spend = (i * 37) % 100 / 10
...     example = {"spend": spend, "label": int(spend > 5), "at": 1_700_000_000_000 + i}
...     producer.send("examples", json.dumps(example).encode())
>>> producer.flush()
400
>>> app = App("shop", models=[Model("buy", entity="member", trainer=lambda: LightGBMTrainer(
...     {"num_leaves": 4, "min_data_in_leaf": 5}, num_boost_round=10))])
>>> signer = HmacSigner(b"a secret of sixteen bytes or more")
>>> registry = ModelRegistry(log, signer=signer)
>>> result = train_once(log, app, "buy", labelled_topic="examples", registry=registry,
...                     alias="candidate")
>>> result.version.version, result.train_rows, result.test_rows, result.metrics["auc"]
(1, 320, 80, 1.0)
>>> sorted(result.timings)
['evaluate', 'fit', 'load', 'profile', 'publish']
>>> from loopline.models.profiles import read_profile
>>> profile = read_profile(result.version, signer.verifier())  # signed with the version
>>> spend = profile.feature("spend")
>>> spend.count == result.train_rows, spend.coverage == 1 - spend.defaults / spend.count
(True, True)
>>> profile.predictions.rows == result.test_rows
True
>>> registry.alias("buy", "candidate").version
1
>>> registry.close(); producer.close(); log.close()
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.app import App
from loopline.contracts.registry import SchemaRegistry
from loopline.features.declarations import FeatureSet
from loopline.log import Log
from loopline.models.declarations import Model
from loopline.models.evaluation import (
    DataError,
    check_features,
    check_labels,
    evaluate,
    scoring_rows,
    split_by_time,
)
from loopline.models.profiles import (
    Profile,
    predictions_profile,
    profile_features,
)
from loopline.models.registry import ModelRegistry, SigningKeyMissing
from loopline.models.registry_records import ModelVersion
from loopline.models.signing import SIGNING_KEY_ENV, SIGNING_KEY_FILE_ENV
from loopline.models.trainers import Trainer
from loopline.models.training_data import (
    Progress,
    TrainingData,
    feature_types,
    from_labelled,
    from_spine,
    group_column,
)

__all__ = [
    "STEPS",
    "Progress",
    "TrainResult",
    "TrainingError",
    "train_once",
]

STEPS = ("load", "fit", "evaluate", "profile", "publish")


class TrainingError(ValueError):
    """A training run that cannot start as asked (the message says what to do)."""


@dataclass(frozen=True)
class TrainResult:
    """A published version, how it scored on the later data, and how long each step took.

    `timings` holds the seconds of each of `STEPS`: load (read and check the
    data, split it), fit, evaluate, profile (the training profile,
    `loopline.models.profiles`), publish (save, sign, write, move the alias).
    """

    version: ModelVersion
    metrics: dict[str, float]
    train_rows: int
    test_rows: int
    timings: dict[str, float]
    alias: str | None = None

    @property
    def seconds(self) -> float:
        """The whole run, in seconds."""
        return sum(self.timings.values())


# -- the steps ---------------------------------------------------------------------------


def new_trainer(model: Model) -> Trainer:
    """A fresh trainer of `model`, checked to follow the trainer protocol."""
    trainer = model.new_trainer()
    if not isinstance(trainer, Trainer):
        raise TrainingError(
            f"model {model.name!r}: its trainer made a {type(trainer).__name__}, which is not a "
            "trainer (it needs name, task, fit, predict, save, load and params; see "
            "loopline.models.trainers.protocol)"
        )
    return trainer


def check_signer(registry: ModelRegistry, model: str) -> None:
    """Fail before any work when nothing could be published: no signing key."""
    if registry.signer is None:
        raise SigningKeyMissing(
            f"cannot publish model {model!r} unsigned: set {SIGNING_KEY_ENV} (a shared secret "
            f"of 16 bytes or more) or {SIGNING_KEY_FILE_ENV} (an Ed25519 private key from "
            "`loopline models keygen`), then train again"
        )


def _load(
    log: Log,
    app: App,
    model: Model,
    *,
    spine: str | Path | None,
    labelled_topic: str | None,
    schemas: SchemaRegistry | None,
    progress: Progress | None,
    allow_missing_history: bool = False,
    entities: Mapping[str, str] | None = None,
) -> TrainingData:
    if (spine is None) == (labelled_topic is None):
        raise TrainingError(
            f"train model {model.name!r} from a spine (a file or topic of entity, instant and "
            "label: --spine) or from a topic of labelled examples (--labelled), one of the two"
        )
    if spine is not None:
        return from_spine(
            log,
            app,
            model,
            spine,
            schemas=schemas,
            progress=progress,
            allow_missing_history=allow_missing_history,
            entities=entities,
        )
    assert labelled_topic is not None
    return from_labelled(log, app, model, labelled_topic, schemas=schemas, progress=progress)


@dataclass(frozen=True)
class Split:
    train: pa.Table
    test: pa.Table
    summary: dict[str, Any]


def split_rows(data: TrainingData, model: Model, task: str, test_fraction: float) -> Split:
    """The checked data, split by time; `DataError`s name the part that is wrong."""
    table = data.table
    if table.num_rows == 0:
        raise DataError(
            f"the data is empty: {data.origin} gave 0 rows; check that the spine or topic "
            "holds labelled rows"
        )
    check_features(table, data.features)
    if data.label not in table.column_names:
        raise DataError(
            f"the data of {data.origin} has no label column {data.label!r} (its columns are "
            f"{', '.join(table.column_names)}): set label= on model {model.name!r}, or pass "
            "--label COLUMN to loopline train"
        )
    check_labels(task, table[data.label])
    train, test = split_by_time(table, data.time, test_fraction)
    cutoff = test[data.time][0].as_py()
    for rows, part, when in ((train, "earlier", "before"), (test, "later", "from")):
        try:
            check_labels(task, rows[data.label])
        except DataError as exc:
            raise DataError(
                f"the {part} part of the data ({rows.num_rows:,} rows {when} {data.time} "
                f"{_instant(cutoff)}) cannot be used: {exc}; use more data, or a test_fraction "
                "that leaves both labels on each side"
            ) from None
    summary = {
        "label": data.label,
        "time": data.time,
        "test_fraction": test_fraction,
        "cutoff": cutoff,
        "train_rows": train.num_rows,
        "test_rows": test.num_rows,
    }
    return Split(train, test, summary)


def _instant(value: Any) -> str:
    """A cutoff as people read it: ISO 8601 for epoch milliseconds.

    >>> _instant(1_700_000_000_000), _instant(7)
    ('2023-11-14T22:13:20Z', '7')
    """
    if isinstance(value, int) and value >= 100_000_000_000:
        moment = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
        text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return text.replace(".000Z", "Z")
    return str(value)


def fit_split(trainer: Trainer, split: Split, data: TrainingData, groups: str | None) -> None:
    options: dict[str, Any] = {"features": list(data.features)}
    if groups is not None:
        options["groups"] = split.train[groups].to_numpy(zero_copy_only=False)
    labels = check_labels(trainer.task, split.train[data.label])
    trainer.fit(split.train.select(list(data.features)), labels, **options)


def model_scores(trainer: Trainer, table: pa.Table, features: tuple[str, ...]) -> np.ndarray:
    return np.asarray(trainer.predict(scoring_rows(table, features)), dtype=np.float64)


def split_metrics(
    trainer: Trainer, split: Split, data: TrainingData, groups: str | None
) -> tuple[dict[str, float], np.ndarray]:
    scores = model_scores(trainer, split.test, data.features)
    ids = split.test[groups] if groups is not None else None
    return evaluate(trainer.task, split.test[data.label], scores, ids), scores


def training_profile(
    features: FeatureSet, task: str, split: Split, data: TrainingData, scores: np.ndarray
) -> Profile:
    """The version's profile: its features over the training rows (with their declared
    defaults), its scores and labels over the later rows, in time order."""
    names = set(features.names())
    defaults = {n: features[n].default for n in data.features if n in names}
    labels = split.test[data.label].cast(pa.float64()).to_numpy(zero_copy_only=False)
    return Profile(
        rows=split.train.num_rows,
        features=profile_features(split.train, data.features, defaults),
        predictions=predictions_profile(task, scores, labels),
    )


# -- once --------------------------------------------------------------------------------


def train_once(
    log: Log,
    app: App,
    model_name: str,
    *,
    spine: str | Path | None = None,
    labelled_topic: str | None = None,
    registry: ModelRegistry,
    alias: str | None = None,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
    allow_missing_history: bool = False,
    entities: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train model `model_name` of `app` once and publish it; see the module docstring.

    The data is the dataset of `spine` (a file or a topic; the application's
    features are computed for it as of each row's instant) or the labelled
    examples of `labelled_topic`. Where `app` was loaded from (`App.spec`) is
    recorded in the manifest, so a rebuild can find it. `alias`, if
    given, is moved to the new version. `schemas` decodes topics bound to a
    contract. `progress(what, done, total)` follows loading and fitting (total
    None while a step's size is unknown). A spine row whose table history
    compaction or retention removed refuses the build (`DatasetError`) unless
    `allow_missing_history` (the row gets the defaults; the manifest counts it).
    `entities` (name -> spine column) reads a spine about related entities, a
    user and an item, as `loopline.features.offline.related` describes.

    Raises `DataError` for data a model cannot learn from (empty, one class,
    a declared feature missing), `SigningKeyMissing` before reading anything
    when the registry cannot sign, `TrainingError` for a bad request.
    """
    model = app.model(model_name)
    check_signer(registry, model.name)
    trainer = new_trainer(model)
    groups = group_column(model)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    data = _load(
        log,
        app,
        model,
        spine=spine,
        labelled_topic=labelled_topic,
        schemas=schemas,
        progress=progress,
        allow_missing_history=allow_missing_history,
        entities=entities,
    )
    split = split_rows(data, model, trainer.task, model.test_fraction)
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    what = f"fit {trainer.name} on {split.train.num_rows:,} rows"
    if progress is not None:
        progress(what, 0, None)
    fit_split(trainer, split, data, groups)
    if progress is not None:
        progress(what, 1, 1)
    timings["fit"] = time.perf_counter() - started

    started = time.perf_counter()
    metrics, scores = split_metrics(trainer, split, data, groups)
    timings["evaluate"] = time.perf_counter() - started

    started = time.perf_counter()
    profile = training_profile(app.features, trainer.task, split, data, scores)
    timings["profile"] = time.perf_counter() - started

    started = time.perf_counter()
    version = _publish(registry, model, trainer, data, split, metrics, alias, profile)
    timings["publish"] = time.perf_counter() - started
    return TrainResult(
        version=version,
        metrics=metrics,
        train_rows=split.train.num_rows,
        test_rows=split.test.num_rows,
        timings=timings,
        alias=alias,
    )


def _publish(
    registry: ModelRegistry,
    model: Model,
    trainer: Trainer,
    data: TrainingData,
    split: Split,
    metrics: dict[str, float],
    alias: str | None,
    profile: Profile,
) -> ModelVersion:
    artifact, format = trainer.save()
    manifest = {**data.manifest, "split": split.summary}
    version = registry.publish(
        model.name,
        artifact,
        format=format,
        trainer=trainer.name,
        params=trainer.params(),
        features=feature_types(split.train, data.features),
        metrics=metrics,
        manifest=manifest,
        profile=profile.to_dict(),
    )
    if alias is not None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in list(metrics.items())[:3])
        registry.promote(model.name, version.version, alias, reason=f"loopline train: {shown}")
    return version
