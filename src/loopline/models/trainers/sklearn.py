"""A trainer for any scikit-learn estimator or pipeline, saved with skops.

The artifact is skops' format (``"skops"``), which builds objects from a schema instead of
running code the file names, and loads only types it trusts. Beyond skops' own list,
`SklearnTrainer.load` trusts scikit-learn's classes (such as the ``Tree`` of a forest) and
``numpy.dtype``, found by name before anything is loaded (`skops.io.get_untrusted_types`).
Any other type or function is refused unless the caller names it in ``trusted=``: a
function a ``FunctionTransformer`` calls, a class of the user's, and also NumPy's and
SciPy's other classes and functions, some of which write files when built
(``numpy.memmap``) or read pickles (``numpy.load``).

Every ``random_state`` left unset in the estimator (or in any step of a pipeline) is fixed,
to 0 by default, so training twice on the same data gives the same model.

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> trainer = SklearnTrainer(LogisticRegression())
>>> trainer.fit(X, [0, 0, 1, 1], features=["spend"])
>>> trainer.predict([{"spend": 0.0}, {"spend": 3.0}]).round(2)
array([0.19, 0.81])
>>> again = SklearnTrainer.load(*trainer.save())
>>> again.predict(X).tolist() == trainer.predict(X).tolist()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from loopline.models.evaluation import check_task
from loopline.models.trainers._params import jsonable, qualified_name
from loopline.models.trainers.data import labels_of, one_label
from loopline.models.trainers.encoding import Encoding
from loopline.models.trainers.protocol import LoadError

__all__ = ["FORMAT", "TRUSTED_PACKAGES", "TRUSTED_TYPES", "OnlineSklearnTrainer", "SklearnTrainer"]

FORMAT = "skops"
TRUSTED_PACKAGES = ("sklearn",)  # their classes, not their functions
TRUSTED_TYPES = frozenset({"numpy.dtype"})


class SklearnTrainer:
    """Fits a scikit-learn estimator or pipeline for a task; its artifact is skops bytes.

    For classification the estimator needs ``predict_proba`` and scores are the probability
    of label 1; for ranking it is fitted as a regressor on the relevance grades (groups are
    not used). A string feature is a category: the categories of the training data are saved
    with the model and each becomes one 0/1 column (`Encoding.onehot`; an unseen or missing
    category is all zeros, docs/decisions/0030). An estimator with ``partial_fit`` (such as ``SGDClassifier``) makes an
    `OnlineSklearnTrainer`, a subclass that also learns one example at a time, as
    ``pathlib.Path`` makes a ``PosixPath``: whether a trainer learns online is then its type
    (`loopline.models.trainers.protocol.OnlineTrainer`), not a flag to remember to check.

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> trainer = SklearnTrainer(make_pipeline(StandardScaler(), RandomForestRegressor(3)),
    ...                          task="regression")
    >>> trainer.params()["randomforestregressor__random_state"]
    0
    >>> SklearnTrainer(RandomForestRegressor())
    Traceback (most recent call last):
    ...
    ValueError: RandomForestRegressor has no predict_proba: a classification trainer needs probabilities; use a classifier (or wrap it in CalibratedClassifierCV), or pass task='regression'
    """

    name = "sklearn"

    def __new__(cls, estimator: Any = None, *args: Any, **kwargs: Any) -> SklearnTrainer:
        # No estimator: copy and pickle make the object first, then restore its state.
        if cls is SklearnTrainer and hasattr(estimator, "partial_fit"):
            cls = OnlineSklearnTrainer
        return super().__new__(cls)

    def __init__(self, estimator: Any, task: str = "classification", *, random_state: int = 0):
        self.task = check_task(task)
        if self.task == "classification" and not hasattr(estimator, "predict_proba"):
            raise ValueError(
                f"{type(estimator).__name__} has no predict_proba: a classification trainer "
                "needs probabilities; use a classifier (or wrap it in CalibratedClassifierCV), "
                "or pass task='regression'"
            )
        unset = {
            key: random_state
            for key, value in estimator.get_params(deep=True).items()
            if (key == "random_state" or key.endswith("__random_state")) and value is None
        }
        if unset:
            estimator.set_params(**unset)
        self.estimator = estimator
        self.random_state = random_state
        self.features: tuple[str, ...] = ()
        self.encoding = Encoding(())

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        features: Sequence[str] | None = None,
        groups: Any = None,
    ) -> None:
        """Fit the estimator on `X` (Table or 2-D array) and labels `y` (or a column name)."""
        exclude = [y if isinstance(y, str) else None, groups if isinstance(groups, str) else None]
        self.encoding = Encoding.learn(X, features, exclude=exclude)
        self.features = self.encoding.features
        matrix = self._input(X)
        labels = labels_of(y, X, self.task)
        self.estimator.fit(matrix, labels.astype(np.int64) if self._classifies else labels)

    def _input(self, rows: Any) -> np.ndarray:
        """The estimator's input: the encoding's matrix, each category one 0/1 column."""
        return self.encoding.onehot(self.encoding.matrix(rows))

    def predict(self, rows: Any) -> np.ndarray:
        """Scores for `rows` (dicts of feature values, a 2-D array or a Table)."""
        matrix = self._input(rows)
        if len(matrix) == 0:
            return np.empty(0, dtype=np.float64)
        if self._classifies:
            positive = list(self.estimator.classes_).index(1)
            return np.asarray(self.estimator.predict_proba(matrix)[:, positive], np.float64)
        return np.asarray(self.estimator.predict(matrix), dtype=np.float64).ravel()

    def save(self) -> tuple[bytes, str]:
        """The skops bytes of the estimator, its task and its feature names."""
        import skops.io

        state: dict[str, Any] = {
            "estimator": self.estimator,
            "task": self.task,
            "features": list(self.features),
        }
        if self.encoding.categories:  # a model of numbers only is saved as it always was
            state["categories"] = self.encoding.to_dict()["categories"]
        return skops.io.dumps(state), FORMAT

    @classmethod
    def load(
        cls, data: bytes, format: str = FORMAT, *, trusted: Iterable[str] = ()
    ) -> SklearnTrainer:
        """The trainer saved in skops bytes; a `LoadError` if they hold a type not trusted.

        Trusted are skops' defaults, the classes of `TRUSTED_PACKAGES`, `TRUSTED_TYPES`, and
        the `trusted` names (``module.name``, as the error message gives them).
        """
        import skops.io

        if format != FORMAT:
            raise LoadError(f"SklearnTrainer loads the {FORMAT!r} format, not {format!r}")
        try:
            found = skops.io.get_untrusted_types(data=data)
        except Exception as exc:  # a damaged or foreign file: skops raises many kinds
            raise LoadError(f"not a skops artifact: {exc}") from exc
        extra = TRUSTED_TYPES | set(trusted)
        refused = [name for name in found if name not in extra and not _trusted_class(name)]
        if refused:
            raise LoadError(
                f"the artifact holds types that are not trusted: {', '.join(refused)}; if you "
                "wrote them, pass SklearnTrainer.load(..., trusted=[...]) with their names"
            )
        state = skops.io.loads(data, trusted=found)
        keys = {"estimator", "task", "features"}
        if not isinstance(state, dict) or not keys <= set(state) <= {*keys, "categories"}:
            raise LoadError("the skops artifact was not saved by SklearnTrainer")
        trainer = cls(state["estimator"], task=state["task"])
        trainer.features = tuple(state["features"])
        try:
            trainer.encoding = Encoding(trainer.features, state.get("categories") or {})
        except (TypeError, ValueError) as exc:
            raise LoadError(f"the skops artifact's categories do not fit: {exc}") from None
        return trainer

    def params(self) -> dict[str, Any]:
        """The estimator's class and its settings (a pipeline's with ``step__`` prefixes)."""
        settings = {
            key: jsonable(value)
            for key, value in self.estimator.get_params(deep=True).items()
            if value is None or isinstance(value, bool | int | float | str)
        }
        return {"estimator": qualified_name(self.estimator), "task": self.task, **settings}

    @property
    def _classifies(self) -> bool:
        return self.task == "classification"


class OnlineSklearnTrainer(SklearnTrainer):
    """A `SklearnTrainer` whose estimator has ``partial_fit``: it also learns one example at a
    time (`learn_one`), so `loopline train --online` can use it.

    ``SklearnTrainer(estimator)`` makes one by itself when the estimator has ``partial_fit``;
    naming the class says so to a type checker too.

    >>> from sklearn.linear_model import LogisticRegression, SGDClassifier
    >>> trainer = SklearnTrainer(SGDClassifier(loss="log_loss"))
    >>> type(trainer).__name__
    'OnlineSklearnTrainer'
    >>> for spend in [0.0, 3.0, 0.5, 2.5] * 25:
    ...     trainer.learn_one({"spend": spend}, spend > 1.0)
    >>> low, high = trainer.predict([{"spend": 0.0}, {"spend": 3.0}])
    >>> bool(low < 0.5 < high)
    True
    >>> OnlineSklearnTrainer(LogisticRegression())
    Traceback (most recent call last):
    ...
    TypeError: LogisticRegression does not learn online (it has no partial_fit): use SklearnTrainer and fit, an estimator such as SGDClassifier, or RiverTrainer
    """

    def __init__(self, estimator: Any, task: str = "classification", *, random_state: int = 0):
        if not hasattr(estimator, "partial_fit"):
            raise TypeError(
                f"{type(estimator).__name__} does not learn online (it has no partial_fit): use "
                "SklearnTrainer and fit, an estimator such as SGDClassifier, or RiverTrainer"
            )
        super().__init__(estimator, task, random_state=random_state)

    def learn_one(self, features: Mapping[str, Any], label: Any) -> None:
        """Update the model with one example, by the estimator's ``partial_fit``."""
        if not self.features:
            self.features = tuple(features)
            self.encoding = Encoding(self.features)
        row = self._input([features])
        value = one_label(self.task, label)
        if self._classifies:
            self.estimator.partial_fit(row, [int(value)], classes=[0, 1])
        else:
            self.estimator.partial_fit(row, [value])


def _trusted_class(name: str) -> bool:
    """Whether `name` (``module.attr``) is a class defined under `TRUSTED_PACKAGES`.

    Only installed modules of those packages are imported to look. Functions are not
    trusted: skops may call one while loading, and a model calls it on its inputs.
    """
    if name.split(".", 1)[0] not in TRUSTED_PACKAGES:
        return False
    module_name, _, attribute = name.rpartition(".")
    while module_name:
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, parent = module_name.rpartition(".")
            attribute = f"{parent}.{attribute}"
            continue
        for part in attribute.split("."):
            obj = getattr(obj, part, None)
        return isinstance(obj, type)
    return False
