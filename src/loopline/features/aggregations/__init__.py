"""One aggregation per kind of docs/decisions/0008, each a file following `Aggregation`.

>>> from loopline.features.aggregations import Mean
>>> Mean("seconds", window="24h", name="dwell_24h").name
'dwell_24h'
"""

from __future__ import annotations

from loopline.features.aggregations.base import (
    NUMBERS,
    Aggregation,
    Differences,
    Filter,
    LifetimePlan,
    Position,
    filtered,
)
from loopline.features.aggregations.count import Count
from loopline.features.aggregations.distinct import Distinct
from loopline.features.aggregations.last import Last
from loopline.features.aggregations.maximum import Max
from loopline.features.aggregations.mean import Mean
from loopline.features.aggregations.minimum import Min
from loopline.features.aggregations.most_frequent import MostFrequent
from loopline.features.aggregations.sum import Sum

KINDS: dict[str, type[Aggregation]] = {
    a.kind: a for a in (Count, Sum, Mean, Min, Max, Last, Distinct, MostFrequent)
}
"""The built-in kinds by name; a kind of your own needs no entry here."""

__all__ = [
    "KINDS",
    "NUMBERS",
    "Aggregation",
    "Count",
    "Differences",
    "Distinct",
    "Filter",
    "LifetimePlan",
    "Last",
    "Max",
    "Mean",
    "Min",
    "MostFrequent",
    "Position",
    "Sum",
    "filtered",
]
