"""The trainer protocol: what loopline needs from anything that builds a model.

A trainer fits a dataset, scores a batch of feature vectors, turns itself into artifact
bytes and back, and describes its parameters for the model registry. Online learners also
learn from one labelled example at a time. A user's own trainer is any class with these
methods: it needs no base class and no registration, and nothing else in loopline changes.

loopline calls ``fit`` with a pyarrow Table of the feature columns, a numpy array of labels
(0 or 1 for classification) and the feature names (and ``groups=``, the query id of every
row, for ranking); ``predict`` with a 2-D float array whose columns are those features in
that order, or, when a feature holds strings (categories, docs/decisions/0030), with the
Table of those feature columns. The built-in trainers also accept a 2-D array in ``fit``,
and rows as dicts of feature values in ``predict``; they read strings as categories through
`loopline.models.trainers.encoding.Encoding`. Scores are the probability of the positive class for
classification, the predicted value for regression, and a relevance score for ranking.

``save`` returns the artifact's bytes and its format's name; the registry signs them, and
``load`` gets them back only after the signature verifies. Prefer a format that runs no
code when it is read (JSON, skops, LightGBM's text format, ONNX); a trainer that pickles
says ``"pickle"``.

>>> import json
>>> import numpy as np
>>> class BaseRate:
...     '''Scores every row with the share of positive labels it was fitted on.'''
...
...     name, task = "base-rate", "classification"
...
...     def __init__(self, rate: float = 0.5) -> None:
...         self.rate = rate
...
...     def fit(self, X, y, *, features=None, groups=None) -> None:
...         self.rate = float(np.mean(y))
...
...     def predict(self, rows) -> np.ndarray:
...         return np.full(len(rows), self.rate)
...
...     def save(self) -> tuple[bytes, str]:
...         return json.dumps({"rate": self.rate}).encode(), "json"
...
...     @classmethod
...     def load(cls, data: bytes, format: str) -> "BaseRate":
...         return cls(json.loads(data)["rate"])
...
...     def params(self) -> dict:
...         return {}
>>> trainer = BaseRate()
>>> isinstance(trainer, Trainer), isinstance(trainer, OnlineTrainer)
(True, False)
>>> trainer.fit(np.zeros((4, 1)), np.array([0, 1, 1, 1]), features=["x"])
>>> BaseRate.load(*trainer.save()).predict([{"x": 1.0}, {"x": 2.0}])
array([0.75, 0.75])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from loopline.models.evaluation import Task

__all__ = ["LoadError", "OnlineTrainer", "Trainer"]


class LoadError(ValueError):
    """Artifact bytes a trainer will not load: a format it does not read, or content it does
    not trust; the message says which and what to do."""


@runtime_checkable
class Trainer(Protocol):
    """Builds a model: ``fit`` a dataset, ``predict`` scores, ``save``/``load`` the artifact.

    `name` names the kind of trainer in the registry record; `task` is ``"classification"``,
    ``"regression"`` or ``"ranking"``.
    """

    name: str
    task: Task

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        features: Sequence[str] | None = None,
        groups: Any = None,
    ) -> None:
        """Learn from the rows of `X` (a pyarrow Table, or a 2-D array with `features` naming
        its columns) and their labels `y`, starting afresh."""

    def predict(self, rows: Any) -> np.ndarray:
        """One score per row: `rows` is a 2-D array in the fitted feature order, or a sequence
        of dicts of feature values."""

    def save(self) -> tuple[bytes, str]:
        """The fitted model as artifact bytes, and the name of their format."""

    @classmethod
    def load(cls, data: bytes, format: str) -> Trainer:
        """The trainer `save` gave `data` from; only called once the artifact's signature
        verifies."""

    def params(self) -> dict[str, Any]:
        """The settings that built the model, as JSON-able values for the registry record."""


@runtime_checkable
class OnlineTrainer(Trainer, Protocol):
    """A trainer that also learns from one labelled example at a time, as outcomes arrive.

    Learning online is a type, not a flag: a trainer learns online exactly when it has
    ``learn_one``, so ``isinstance(trainer, OnlineTrainer)`` is the whole test (the online
    trainer asks it before it starts). A class whose models learn online only sometimes
    gives only those a ``learn_one``: a `SklearnTrainer` is an `OnlineSklearnTrainer`
    exactly when its estimator has ``partial_fit``.

    >>> class RunningRate:
    ...     '''Scores every row with the share of positive labels seen so far.'''
    ...
    ...     name, task = "running-rate", "classification"
    ...
    ...     def __init__(self, positives: int = 0, seen: int = 0) -> None:
    ...         self.positives, self.seen = positives, seen
    ...
    ...     def fit(self, X, y, *, features=None, groups=None) -> None:
    ...         self.positives, self.seen = int(np.sum(y)), len(y)
    ...
    ...     def learn_one(self, features, label) -> None:
    ...         self.positives, self.seen = self.positives + int(label), self.seen + 1
    ...
    ...     def predict(self, rows) -> np.ndarray:
    ...         return np.full(len(rows), self.positives / max(self.seen, 1))
    ...
    ...     def save(self) -> tuple[bytes, str]:
    ...         return f"{self.positives} {self.seen}".encode(), "text"
    ...
    ...     @classmethod
    ...     def load(cls, data: bytes, format: str) -> "RunningRate":
    ...         return cls(*map(int, data.split()))
    ...
    ...     def params(self) -> dict:
    ...         return {}
    >>> trainer = RunningRate()
    >>> isinstance(trainer, OnlineTrainer)
    True
    >>> for label in (1, 0, 1, 1):
    ...     trainer.learn_one({"spend": 2.0}, label)
    >>> trainer.predict([{"spend": 1.0}])
    array([0.75])
    """

    def learn_one(self, features: Mapping[str, Any], label: Any) -> None:
        """Update the model with one example: its feature values and its label."""
