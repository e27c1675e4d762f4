"""How an application's outcomes become labels: the attribution window and the label rule.

>>> o = Outcomes(window="10m", positive=["accepted"])
>>> o.window_ms, o.lateness_ms, o.positive
(600000, 0, ('accepted',))
>>> Outcomes(window=3_600_000, positive="click").positive  # ms, and one type
('click',)
>>> Outcomes(window="soon")
Traceback (most recent call last):
...
ValueError: Outcomes(window='soon'): a duration such as 30s, 10m or 1h
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from loopline.log import parse_duration

__all__ = ["Outcomes"]


@dataclass(frozen=True)
class Outcomes:
    """Declared on the application: ``App(..., outcomes=Outcomes(window="1h"))``.

    - `window`: how long after a decision an outcome still counts for it;
    - `positive`: the outcome types that make a label of 1 (empty: any type);
    - `label`: ``"binary"`` (1.0 or 0.0) or ``"value"`` (the sum of the
      matched positive outcomes' values);
    - `negatives`: a returned item with no outcome when its window closes is
      a label-0 example (False: it is dropped, and counted);
    - `lateness`: how far out of order (event time) outcomes and decisions
      may arrive and still be joined.
    """

    window: str | int = "1h"
    positive: Sequence[str] = ()
    label: Literal["binary", "value"] = "binary"
    negatives: bool = True
    lateness: str | int = 0

    def __post_init__(self) -> None:
        positive = (self.positive,) if isinstance(self.positive, str) else self.positive
        object.__setattr__(self, "positive", tuple(positive))
        for name in ("window", "lateness"):
            try:
                ms = parse_duration(getattr(self, name))
            except (TypeError, ValueError):
                ms = None
            if ms is None or ms < (1 if name == "window" else 0):
                raise ValueError(
                    f"Outcomes({name}={getattr(self, name)!r}): a duration such as 30s, 10m or 1h"
                )
        if self.label not in ("binary", "value"):
            raise ValueError(f"Outcomes(label={self.label!r}): 'binary' or 'value'")

    @property
    def window_ms(self) -> int:
        return parse_duration(self.window) or 0

    @property
    def lateness_ms(self) -> int:
        return parse_duration(self.lateness) or 0

    def counts(self, outcome_type: str) -> bool:
        """Whether an outcome of `outcome_type` makes a positive label."""
        return not self.positive or outcome_type in self.positive
