"""Features: declared once, computed online by a stream processor and offline for training.

Aggregations are one class per kind (`Count`, `Sum`, `Mean`, `Min`, `Max`,
`Last`, `Distinct`, `MostFrequent`: `loopline.features.aggregations`), declared as
``Sum("amount", window="1h")``. See docs/decisions/0008 for the exact meaning
of every value.
"""

from __future__ import annotations

from loopline.features.aggregations import (
    Aggregation,
    Count,
    Distinct,
    Last,
    Max,
    Mean,
    Min,
    MostFrequent,
    Sum,
)
from loopline.features.declarations import (
    Aggregations,
    DeclarationError,
    Derived,
    Entity,
    FeatureSet,
    Table,
    TableFeature,
    Window,
)

__all__ = [
    "Aggregation",
    "Aggregations",
    "Count",
    "DeclarationError",
    "Derived",
    "Distinct",
    "Entity",
    "FeatureSet",
    "Last",
    "Max",
    "Mean",
    "Min",
    "MostFrequent",
    "Sum",
    "Table",
    "TableFeature",
    "Window",
]
