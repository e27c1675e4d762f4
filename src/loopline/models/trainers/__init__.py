"""Trainers: the protocol every model builder follows, and the built-in ones.

`SklearnTrainer` (any scikit-learn estimator or pipeline, saved with skops),
`LightGBMTrainer` (LightGBM's text format) and `RiverTrainer` (online learning, a pickle
loaded only after its signature verifies). A user's own trainer is any class that follows
`Trainer`; see `loopline.models.trainers.protocol`.

`load_trainer` turns artifact bytes and their format's name back into a trainer.

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> trainer = SklearnTrainer(LogisticRegression())
>>> trainer.fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1], features=["spend"])
>>> data, format = trainer.save()
>>> type(load_trainer(data, format)).__name__
'SklearnTrainer'
>>> load_trainer(data, "onnx")
Traceback (most recent call last):
...
loopline.models.trainers.protocol.LoadError: no trainer loads the format 'onnx': the built-in formats are lightgbm, pickle, skops; for another, pass trainer_class=
"""

from __future__ import annotations

from loopline.models.trainers.data import feature_matrix, row_matrix
from loopline.models.trainers.encoding import Encoding
from loopline.models.trainers.lightgbm import LightGBMTrainer
from loopline.models.trainers.protocol import LoadError, OnlineTrainer, Trainer
from loopline.models.trainers.river import RiverTrainer
from loopline.models.trainers.sklearn import OnlineSklearnTrainer, SklearnTrainer

__all__ = [
    "FORMATS",
    "Encoding",
    "LightGBMTrainer",
    "LoadError",
    "OnlineSklearnTrainer",
    "OnlineTrainer",
    "RiverTrainer",
    "SklearnTrainer",
    "Trainer",
    "feature_matrix",
    "load_trainer",
    "row_matrix",
]

FORMATS: dict[str, type[Trainer]] = {
    "lightgbm": LightGBMTrainer,
    "pickle": RiverTrainer,
    "skops": SklearnTrainer,
}
"""The built-in trainer for each artifact format a version may name."""


def load_trainer(
    data: bytes, format: str, *, trainer_class: type[Trainer] | None = None
) -> Trainer:
    """The trainer saved as `data` in `format`: by `trainer_class` if given (a user's own
    trainer), else by the built-in trainer of that format. Call it only with bytes whose
    signature has verified: a ``"pickle"`` runs code when it is read."""
    loader = trainer_class or FORMATS.get(format)
    if loader is None:
        raise LoadError(
            f"no trainer loads the format {format!r}: the built-in formats are "
            f"{', '.join(sorted(FORMATS))}; for another, pass trainer_class="
        )
    return loader.load(data, format)
