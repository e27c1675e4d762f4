"""Features: declared once, computed online by a stream processor and offline for training.

See docs/decisions/0008 for the exact meaning of every value.
"""

from __future__ import annotations

from loopline.features.declarations import (
    Aggregate,
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
    "Aggregate",
    "Aggregations",
    "DeclarationError",
    "Derived",
    "Entity",
    "FeatureSet",
    "Table",
    "TableFeature",
    "Window",
]
