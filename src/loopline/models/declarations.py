"""Model declarations: what an application says about a model it trains.

A `Model` names the model (its name in the registry), the trainer that fits
it (anything following `loopline.models.trainers.Trainer`), the entity its
rows describe, the features it reads (default: every feature of the entity)
and the label column. `loopline train APP --model NAME` does the rest, on
any schedule, from the same declaration.

>>> from loopline.models.trainers import LightGBMTrainer
>>> model = Model("accept", trainer=lambda: LightGBMTrainer(), entity="member",
...               features=["views_1h", "country"], label="accepted")
>>> model.name, model.label, model.new_trainer().name
('accept', 'accepted', 'lightgbm')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Model:
    """A model an application trains; `trainer` makes a fresh, unfitted trainer.

    `trainer` is a zero-argument callable (a class, a lambda, a factory), so
    every training run starts from scratch. `time` names the dataset's time
    column (the spine's instant) used to split train from test by time.
    """

    name: str
    trainer: Callable[[], Any]
    entity: str
    label: str = "label"
    features: Sequence[str] | None = None
    time: str = "at"
    test_fraction: float = 0.2
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        if not 0 < self.test_fraction < 1:
            raise ValueError(
                f"model {self.name!r}: test_fraction must be between 0 and 1, "
                f"not {self.test_fraction}"
            )

    def new_trainer(self) -> Any:
        """A fresh trainer for one training run."""
        return self.trainer()
