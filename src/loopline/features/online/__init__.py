"""Features computed online: incremental, exact per docs/decisions/0008, no log I/O.

`OnlineFeatures` takes a `FeatureSet`, is fed records, and answers feature
vectors; `EntityState` holds one entity's tiles, each feature's state kept by
its `loopline.features.aggregations.Aggregation`.
"""

from __future__ import annotations

from loopline.features.online.reads import TileReader
from loopline.features.online.state import EntityState, Plan
from loopline.features.online.tables import TableState
from loopline.features.online.times import event_time_ms
from loopline.features.online.unreadable import UnreadableRecord
from loopline.features.online.vectors import OnlineFeatures
from loopline.features.online.watermarks import Watermarks

__all__ = [
    "EntityState",
    "OnlineFeatures",
    "Plan",
    "TableState",
    "TileReader",
    "UnreadableRecord",
    "Watermarks",
    "event_time_ms",
]
