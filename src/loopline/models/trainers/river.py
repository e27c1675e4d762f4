"""A trainer for River models: online learning, one labelled example at a time.

River models have no format of their own, so the artifact is a pickle (``"pickle"``) of the
model, its task and its feature names. Reading a pickle runs code that the file names:
`RiverTrainer.load` must only ever be given bytes whose signature has verified, which is
what the model registry does before it calls it.

>>> from river import linear_model, preprocessing
>>> trainer = RiverTrainer(preprocessing.StandardScaler() | linear_model.LogisticRegression())
>>> from loopline.models.trainers.protocol import OnlineTrainer
>>> trainer.task, isinstance(trainer, OnlineTrainer)
('classification', True)
>>> for spend in [0.0, 3.0, 0.5, 2.5] * 50:
...     trainer.learn_one({"spend": spend}, spend > 1.0)
>>> low, high = trainer.predict([{"spend": 0.0}, {"spend": 3.0}])
>>> bool(low < 0.5 < high)
True
>>> RiverTrainer.load(*trainer.save()).predict([{"spend": 3.0}]).tolist() == [high]
True
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.models.evaluation import DataError, check_features, check_task
from loopline.models.trainers._params import jsonable, qualified_name
from loopline.models.trainers.data import labels_of, number_of, one_label
from loopline.models.trainers.encoding import Encoding
from loopline.models.trainers.protocol import LoadError

__all__ = ["FORMAT", "RiverTrainer"]

FORMAT = "pickle"


def _task_of(model: Any) -> str | None:
    from river import base

    if isinstance(model, base.Classifier):
        return "classification"
    if isinstance(model, base.Regressor):
        return "regression"
    return None


class RiverTrainer:
    """Trains a River classifier or regressor (or a pipeline ending in one).

    `task` follows from the model; ranking takes a regressor, fitted on the relevance
    grades. `fit` starts from a fresh copy of the model (``clone``) and learns the rows in
    the order given, which for a dataset split by time is time order; `learn_one` goes on
    from wherever the model is. Missing feature values (None, NaN) are left out of the
    example, as River expects; strings stay strings (River reads categories itself,
    docs/decisions/0030). Scores are the probability of label 1 for classification.
    """

    name = "river"

    def __init__(self, model: Any, task: str | None = None) -> None:
        served = _task_of(model)
        if served is None:
            raise ValueError(
                f"{type(model).__name__} is neither a River classifier nor a regressor"
            )
        wanted = check_task(task) if task is not None else served
        if (wanted == "classification") != (served == "classification"):
            raise ValueError(
                f"{type(model).__name__} is a {served} model, but the task is {wanted}"
            )
        self.task = wanted
        self.model = model
        self.features: tuple[str, ...] = ()

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        features: Sequence[str] | None = None,
        groups: Any = None,
    ) -> None:
        """Learn every row of `X` (Table or 2-D array), in order, with its label from `y`."""
        exclude = [y if isinstance(y, str) else None, groups if isinstance(groups, str) else None]
        encoding = Encoding.learn(X, features, exclude=exclude)
        self.features = encoding.features
        labels = labels_of(y, X, self.task)
        self.model = self.model.clone()
        classifies = self.task == "classification"
        rows = X if isinstance(X, pa.Table) else np.asarray(X)
        for x, label in zip(_native(rows, self.features), labels.tolist(), strict=True):
            self.model.learn_one(x, bool(label) if classifies else label)

    def learn_one(self, features: Mapping[str, Any], label: Any) -> None:
        """Learn one example: its feature values (the fitted features; before any fit, the
        keys of the first example) and its label."""
        value = one_label(self.task, label)
        if not self.features:
            self.features = tuple(features)
        (x,) = _native([features], self.features)
        self.model.learn_one(x, bool(value) if self.task == "classification" else value)

    def predict(self, rows: Any) -> np.ndarray:
        """Scores for `rows` (dicts of feature values, a 2-D array or a Table)."""
        features = self.features
        if not features and isinstance(rows, Sequence) and rows:
            features = tuple(rows[0])  # nothing learned yet: the model knows no features
        examples = _native(rows, features)
        if self.task == "classification":
            scores = [_positive(self.model.predict_proba_one(x)) for x in examples]
        else:
            scores = [self.model.predict_one(x) for x in examples]
        return np.asarray(scores, dtype=np.float64)

    def save(self) -> tuple[bytes, str]:
        """A pickle of the model, its task and its feature names."""
        state = {"model": self.model, "task": self.task, "features": list(self.features)}
        return pickle.dumps(state, protocol=5), FORMAT

    @classmethod
    def load(cls, data: bytes, format: str = FORMAT) -> RiverTrainer:
        """The trainer in a pickle that `save` wrote. Unpickling runs code: call this only
        with bytes whose signature has verified."""
        if format != FORMAT:
            raise LoadError(f"RiverTrainer loads the {FORMAT!r} format, not {format!r}")
        state = pickle.loads(data)  # the registry verified the signature first
        if not isinstance(state, dict) or set(state) != {"model", "task", "features"}:
            raise LoadError("the pickle was not saved by RiverTrainer")
        trainer = cls(state["model"], task=state["task"])
        trainer.features = tuple(state["features"])
        return trainer

    def params(self) -> dict[str, Any]:
        """The model's class and River's description of its settings."""
        return {
            "model": qualified_name(self.model),
            "task": self.task,
            **jsonable(self.model._get_params()),
        }


def _native(rows: Any, features: Sequence[str]) -> list[dict[str, Any]]:
    """River's examples of `rows` (dicts of feature values, a 2-D array or a Table), one row at
    a time, so a row gives the same example in a batch (a dataset) and alone (serving):
    strings stay strings (River reads categories itself: a category it never learned is one
    it knows nothing about), numbers become floats, missing values (None, NaN) are left out.
    """
    names = tuple(features)
    if isinstance(rows, pa.Table):
        check_features(rows, names)
        rows = rows.select(list(names)).to_pylist()
    elif isinstance(rows, np.ndarray):
        if rows.ndim != 2 or rows.shape[1] != len(names):
            raise DataError(
                f"rows must be a 2-D array of {len(names)} columns ({', '.join(names)}); got "
                f"an array of shape {rows.shape}"
            )
        rows = [dict(zip(names, row, strict=True)) for row in rows.tolist()]
    examples = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataError(
                f"row {i} is {type(row).__name__}: rows are dicts of feature values or a 2-D array"
            )
        missing = [name for name in names if name not in row]
        if missing:
            raise DataError(
                f"row {i} lacks features: {', '.join(missing)}; declared are {', '.join(names)}"
            )
        example: dict[str, Any] = {}
        for name in names:
            value = row[name]
            if isinstance(value, str):
                example[name] = value
            elif value is not None:
                number = number_of(value, i, name)
                if number == number:
                    example[name] = number
        examples.append(example)
    return examples


def _positive(probabilities: Mapping[Any, float]) -> float:
    """The probability of label 1 from River's ``{label: probability}`` (0.5 before any
    example: River then knows no labels)."""
    if True in probabilities:
        return float(probabilities[True])
    if False in probabilities:
        return 1.0 - float(probabilities[False])
    return 0.5
