"""Offline features: point-in-time vectors for training, computed from the log's history.

`events_table` turns a topic's records into the table `build` reads; `build`
gives each (entity, instant) row of a spine exactly the values the online
processor would have read then (docs/decisions/0008).
"""

from __future__ import annotations

from loopline.features.offline.builder import build
from loopline.features.offline.events import BuildError, events_table

__all__ = ["BuildError", "build", "events_table"]
