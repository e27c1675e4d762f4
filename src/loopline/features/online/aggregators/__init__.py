"""One aggregator per kind of docs/decisions/0008, each following `Aggregator`'s protocol."""

from __future__ import annotations

from typing import Any

from loopline.features.online.aggregators.base import Aggregator, Position
from loopline.features.online.aggregators.count import Count
from loopline.features.online.aggregators.distinct import Distinct
from loopline.features.online.aggregators.last import Last
from loopline.features.online.aggregators.maximum import Maximum
from loopline.features.online.aggregators.mean import Mean
from loopline.features.online.aggregators.minimum import Minimum
from loopline.features.online.aggregators.sum import Sum

AGGREGATORS: dict[str, Aggregator[Any]] = {
    a.kind: a for a in (Count(), Sum(), Mean(), Minimum(), Maximum(), Last(), Distinct())
}
"""The aggregator of each kind, by the name an `Aggregate` declares."""

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "Count",
    "Distinct",
    "Last",
    "Maximum",
    "Mean",
    "Minimum",
    "Position",
    "Sum",
]
