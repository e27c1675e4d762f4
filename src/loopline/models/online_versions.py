"""The versions an online trainer publishes: what each records, and how a run goes on from one.

An online version's manifest says which examples it learned: per partition of
the labelled topic, the first offset of the run (`start`) and the offset it
learned up to (`end`), with the topic, the consumer group and the running
count of examples. A restarted trainer finds the last version of its own
(same topic and group) and goes on from its `end` offsets, with the model
that version holds: nothing learned twice, nothing skipped.

>>> m = manifest(app="shop", topic="shop.labelled", group="g", starts={0: 0},
...     ends={0: 120}, total=120, window=120, validated=12, validate_every=10,
...     dead_letters=0, previous=None)
>>> m["partitions"], m["examples"]
([{'partition': 0, 'start': 0, 'end': 120}], 120)
>>> r = recorded_progress(m)
>>> r.starts, r.ends, r.total
({0: 0}, {0: 120}, 120)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopline import __version__
from loopline.models.registry import ModelNotFound, ModelRegistry
from loopline.models.registry_records import ModelVersion

__all__ = ["OnlineVersion", "Progress", "manifest", "previous_version", "recorded_progress"]


@dataclass(frozen=True)
class OnlineVersion:
    """A version published by `train_online`: how many examples it learned since the
    previous one and in all, and its progressive-validation metrics over those."""

    version: ModelVersion
    examples: int
    total: int
    metrics: dict[str, float]
    validated: int


@dataclass(frozen=True)
class Progress:
    """Where a published version left off: offsets per partition and examples in all."""

    starts: dict[int, int]
    ends: dict[int, int]
    total: int


def previous_version(
    registry: ModelRegistry, name: str, topic: str, group: str
) -> ModelVersion | None:
    """The last version this online trainer (topic and group) published, if any."""
    try:
        versions = registry.versions(name)
    except ModelNotFound:
        return None
    for version in reversed(versions):
        m = version.manifest or {}
        if m.get("kind") == "online" and (m.get("topic"), m.get("group")) == (topic, group):
            return version
    return None


def recorded_progress(recorded: Mapping[str, Any]) -> Progress:
    """The progress an online version's manifest records."""
    parts = recorded.get("partitions", [])
    return Progress(
        starts={int(p["partition"]): int(p["start"]) for p in parts},
        ends={int(p["partition"]): int(p["end"]) for p in parts},
        total=int(recorded.get("examples", 0)),
    )


def manifest(
    *,
    app: str,
    topic: str,
    group: str,
    starts: Mapping[int, int],
    ends: Mapping[int, int],
    total: int,
    window: int,
    validated: int,
    validate_every: int,
    dead_letters: int,
    previous: int | None,
) -> dict[str, Any]:
    """The manifest of an online version learned from `topic` up to `ends`."""
    return {
        "kind": "online",
        "app": app,
        "topic": topic,
        "group": group,
        "partitions": [
            {"partition": p, "start": starts.get(p, end), "end": end}
            for p, end in sorted(ends.items())
        ],
        "examples": total,
        "window": window,
        "validated": validated,
        "validate_every": validate_every,
        "dead_letters": dead_letters,
        "previous": previous,
        "loopline_version": __version__,
    }
