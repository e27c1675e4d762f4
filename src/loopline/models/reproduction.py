"""Reproduction: a published version trained again from its manifest, scores side by side.

`reproduce` is what ``loopline train APP --model NAME --reproduce VERSION``
does: rebuild the version's data from the exact offsets its manifest
records, fit the same trainer with the same split, and put the new model's
scores beside the published model's (loaded through the registry, its
signature verified) on the same later rows, so anyone can check that the
version is what its manifest says. Nothing is published.

>>> import json, tempfile
>>> from loopline import App
>>> from loopline.log import open_log
>>> from loopline.models import HmacSigner, ModelRegistry
>>> from loopline.models.declarations import Model
>>> from loopline.models.trainers import LightGBMTrainer
>>> from loopline.models.training import train_once
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
>>> registry = ModelRegistry(log, signer=HmacSigner(b"a secret of sixteen bytes or more"))
>>> _ = train_once(log, app, "buy", labelled_topic="examples", registry=registry)
>>> again = reproduce(log, app, "buy", 1, registry=registry)
>>> again.identical, again.same_artifact, len(again.original)
(True, True, 80)
>>> registry.close(); producer.close(); log.close()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopline.app import App
from loopline.contracts.registry import SchemaRegistry
from loopline.log import Log
from loopline.models.registry import ModelRegistry
from loopline.models.registry_records import ModelVersion, plain
from loopline.models.trainers import FORMATS, load_trainer
from loopline.models.training import (
    TrainingError,
    fit_split,
    model_scores,
    new_trainer,
    split_metrics,
    split_rows,
)
from loopline.models.training_data import (
    Progress,
    TrainingData,
    dataset_again,
    group_column,
    labelled_again,
)

__all__ = ["Reproduction", "reproduce"]


@dataclass(frozen=True)
class Reproduction:
    """A version trained again from its manifest: both models' scores on the same later rows.

    `original` are the scores of the published model (loaded through the
    registry, its signature verified); `rebuilt` those of the model trained
    again. A deterministic trainer gives identical scores (and artifact).
    """

    version: ModelVersion
    original: np.ndarray
    rebuilt: np.ndarray
    metrics: dict[str, float]
    same_artifact: bool
    same_params: bool
    test_rows: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_rows", len(self.rebuilt))

    @property
    def identical(self) -> bool:
        """Whether every score is the same, bit for bit."""
        return self.original.shape == self.rebuilt.shape and bool(
            np.array_equal(self.original, self.rebuilt)
        )

    @property
    def max_difference(self) -> float:
        """The largest absolute difference between the two models' scores."""
        if self.original.shape != self.rebuilt.shape or not len(self.original):
            return float("inf") if self.original.shape != self.rebuilt.shape else 0.0
        return float(np.max(np.abs(self.original - self.rebuilt)))


def reproduce(
    log: Log,
    app: App,
    model_name: str,
    version: int,
    *,
    registry: ModelRegistry,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
) -> Reproduction:
    """Train version `version` of model `model_name` again from its manifest; nothing is
    published. Returns both models' scores on the later part of the rebuilt data.

    Raises `DatasetError` when the log no longer holds the records read then,
    `TrainingError` for a version that was not trained by `train_once`, and
    `UntrustedModel` when the published artifact does not verify.
    """
    model = app.model(model_name)
    published = registry.version(model.name, version)
    recorded = published.manifest or {}
    kind = recorded.get("kind")
    if kind not in ("dataset", "labelled"):
        how = (
            "it was learned online, from a stream in arrival order"
            if kind == "online"
            else "its manifest does not say which data built it"
        )
        raise TrainingError(
            f"model {model.name!r} v{version} cannot be reproduced: {how}; reproduce a version "
            "published by `loopline train` from a spine or a labelled topic"
        )
    trainer = new_trainer(model)
    if kind == "dataset":
        data = dataset_again(log, app, model, recorded, schemas=schemas, progress=progress)
    else:
        data = labelled_again(log, app, model, recorded, schemas=schemas, progress=progress)
    summary = recorded.get("split") or {}
    data = TrainingData(
        data.table,
        tuple(published.feature_names) or data.features,
        summary.get("label", data.label),
        summary.get("time", data.time),
        data.manifest,
        data.origin,
    )
    split = split_rows(data, model, trainer.task, summary.get("test_fraction", model.test_fraction))
    what = f"fit {trainer.name} on {split.train.num_rows:,} rows"
    if progress is not None:
        progress(what, 0, None)
    fit_split(trainer, split, data, group_column(model))
    if progress is not None:
        progress(what, 1, 1)
    metrics, rebuilt = split_metrics(trainer, split, data, group_column(model))
    artifact = registry.load_artifact(published)  # verified, or UntrustedModel
    known = published.format in FORMATS
    original_model = load_trainer(
        artifact, published.format, trainer_class=None if known else type(trainer)
    )
    original = model_scores(original_model, split.test, data.features)
    again, _ = trainer.save()
    return Reproduction(
        version=published,
        original=original,
        rebuilt=rebuilt,
        metrics=metrics,
        same_artifact=again == artifact,
        same_params=_plain(trainer.params()) == published.params,
    )


def _plain(params: dict[str, Any]) -> Any:
    return plain(params, "parameters")
