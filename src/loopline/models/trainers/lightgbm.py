"""A trainer for LightGBM gradient-boosted trees, saved in LightGBM's own text format.

The artifact (``"lightgbm"``) is exactly ``Booster.model_to_string()``: plain text that
LightGBM parses and never executes, and that holds the feature names and the objective, so
the model loads without anything else. Training is deterministic: ``seed=0``,
``deterministic=True``, ``force_row_wise=True`` and ``num_threads=1`` unless the parameters
say otherwise, so the same data gives the same model, byte for byte, on any machine. (The
number of threads changes the order in which floating-point sums are added up; raise it for
a large dataset, and rebuild with the same value.)

A string feature is a LightGBM categorical feature: its categories (`Encoding`) are saved in
the model text as LightGBM's own ``pandas_categorical`` line, so plain LightGBM given a pandas
``category`` frame scores the artifact the same. An unseen category is missing, and goes to
the "other" side of every categorical split (docs/decisions/0030).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 2))
>>> y = (X[:, 0] > 0).astype(int)
>>> trainer = LightGBMTrainer({"num_leaves": 4}, num_boost_round=20)
>>> trainer.fit(X, y, features=["spend", "age"])
>>> scores = trainer.predict([{"spend": -2.0, "age": 0.0}, {"spend": 2.0, "age": 0.0}])
>>> bool(scores[0] < 0.1 and scores[1] > 0.9)
True
>>> data, format = trainer.save()
>>> format, data.splitlines()[:1]
('lightgbm', [b'tree'])
>>> LightGBMTrainer.load(data, format).predict(X).tobytes() == trainer.predict(X).tobytes()
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loopline.models.evaluation import DataError, check_task
from loopline.models.trainers._params import jsonable
from loopline.models.trainers.data import groups_of, labels_of
from loopline.models.trainers.encoding import Encoding
from loopline.models.trainers.protocol import LoadError

__all__ = ["DEFAULTS", "FORMAT", "OBJECTIVES", "LightGBMTrainer"]

FORMAT = "lightgbm"
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbosity": -1,
}
OBJECTIVES = {"classification": "binary", "regression": "regression", "ranking": "lambdarank"}
_CLASSIFICATION = {"binary", "cross_entropy", "xentropy"}
_RANKING = {"lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart"}
_UNSUPPORTED = {"multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"}


def task_of(objective: str) -> str:
    """The task a LightGBM objective serves.

    >>> task_of("binary"), task_of("huber"), task_of("lambdarank")
    ('classification', 'regression', 'ranking')
    """
    if objective in _UNSUPPORTED:
        raise ValueError(
            f"objective {objective!r} is not supported: loopline classifiers are binary "
            "(objective 'binary')"
        )
    if objective in _CLASSIFICATION:
        return "classification"
    return "ranking" if objective in _RANKING else "regression"


class LightGBMTrainer:
    """Trains a LightGBM booster with `params` for `num_boost_round` rounds.

    The objective defaults to the task's (``binary``, ``regression``, ``lambdarank``); another
    objective must serve the same task. Ranking needs ``groups`` (the query id of every row)
    in `fit`; rows are ordered by group, stably, since LightGBM wants each query's rows
    together. Scores are probabilities for classification.

    >>> LightGBMTrainer({"objective": "huber"}, task="classification")
    Traceback (most recent call last):
    ...
    ValueError: objective 'huber' is a regression objective, but the task is classification
    """

    name = "lightgbm"

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        task: str = "classification",
        num_boost_round: int = 100,
    ) -> None:
        self.task = check_task(task)
        merged = {**DEFAULTS, "objective": OBJECTIVES[self.task], **(params or {})}
        served = task_of(str(merged["objective"]))
        if served != self.task:
            raise ValueError(
                f"objective {merged['objective']!r} is a {served} objective, but the task is "
                f"{self.task}"
            )
        self.lightgbm_params = merged
        self.num_boost_round = num_boost_round
        self.features: tuple[str, ...] = ()
        self.encoding = Encoding(())
        self.booster: Any = None

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        features: Sequence[str] | None = None,
        groups: Any = None,
    ) -> None:
        """Train a new booster on `X` (Table or 2-D array) and labels `y` (or a column name)."""
        import lightgbm

        exclude = [y if isinstance(y, str) else None, groups if isinstance(groups, str) else None]
        self.encoding = Encoding.learn(X, features, exclude=exclude)
        self.features = self.encoding.features
        matrix = self.encoding.matrix(X)
        labels = labels_of(y, X, self.task)
        group_sizes = None
        if self.task == "ranking":
            ids = groups_of(groups, X)
            if ids is None:
                raise DataError("ranking needs groups=: the query id of every row")
            order = np.argsort(ids, kind="stable")
            matrix, labels, ids = matrix[order], labels[order], ids[order]
            _, group_sizes = np.unique(ids, return_counts=True)
        categorical = [j for j, n in enumerate(self.features) if n in self.encoding.categories]
        dataset = lightgbm.Dataset(
            matrix,
            label=labels,
            group=group_sizes,
            feature_name=list(self.features),
            categorical_feature=categorical or "auto",
            params={"verbosity": self.lightgbm_params.get("verbosity", -1)},
        )
        self.booster = lightgbm.train(
            self.lightgbm_params, dataset, num_boost_round=self.num_boost_round
        )
        if categorical:  # saved in the model text, where LightGBM's own pandas input reads it
            self.booster.pandas_categorical = [
                list(values) for values in self.encoding.categories.values()
            ]

    def predict(self, rows: Any) -> np.ndarray:
        """Scores for `rows` (dicts of feature values, a 2-D array or a Table)."""
        if self.booster is None:
            raise RuntimeError("LightGBMTrainer.predict before fit: fit it or load a model")
        matrix = self.encoding.matrix(rows)
        if len(matrix) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.booster.predict(matrix), dtype=np.float64)

    def save(self) -> tuple[bytes, str]:
        """The booster in LightGBM's text format."""
        if self.booster is None:
            raise RuntimeError("LightGBMTrainer.save before fit: there is no model to save")
        return self.booster.model_to_string().encode("utf-8"), FORMAT

    @classmethod
    def load(cls, data: bytes, format: str = FORMAT) -> LightGBMTrainer:
        """The trainer of a LightGBM text model; its task follows from the objective."""
        import lightgbm

        if format != FORMAT:
            raise LoadError(f"LightGBMTrainer loads the {FORMAT!r} format, not {format!r}")
        try:
            booster = lightgbm.Booster(model_str=data.decode("utf-8"))
        except (UnicodeDecodeError, lightgbm.basic.LightGBMError) as exc:
            raise LoadError(f"not a LightGBM text model: {exc}") from exc
        loaded = dict(booster.params)
        objective = str(loaded.get("objective", "regression"))
        try:
            task = task_of(objective)
        except ValueError as exc:
            raise LoadError(str(exc)) from None
        trainer = cls(task=task, num_boost_round=booster.current_iteration())
        trainer.lightgbm_params = loaded
        trainer.booster = booster
        trainer.features = tuple(booster.feature_name())
        trainer.encoding = _encoding(booster, trainer.features)
        return trainer

    def params(self) -> dict[str, Any]:
        """The LightGBM parameters (after `load`: all that the model file records)."""
        return {
            "task": self.task,
            "num_boost_round": self.num_boost_round,
            **jsonable(self.lightgbm_params),
        }


def _encoding(booster: Any, features: tuple[str, ...]) -> Encoding:
    """The encoding a model text holds: the categories of its categorical features (LightGBM's
    ``pandas_categorical``, in the order of those features), or none (a model of numbers
    only, and every model from before categories)."""
    categories = booster.pandas_categorical
    if not categories:
        return Encoding(features)
    found = booster.params.get("categorical_feature", [])
    if isinstance(found, str):
        found = [int(j) for j in found.split(",") if j.strip()]
    elif isinstance(found, int):
        found = [found]
    positions = sorted(int(j) for j in found)
    if len(positions) != len(categories) or any(not 0 <= j < len(features) for j in positions):
        raise LoadError(
            f"the model text lists categories of {len(categories)} features but its "
            f"categorical features are {positions}: it was not saved by LightGBMTrainer"
        )
    return Encoding(
        features,
        {features[j]: tuple(values) for j, values in zip(positions, categories, strict=True)},
    )
