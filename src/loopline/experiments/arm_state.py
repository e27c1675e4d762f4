"""The watcher's state: statistics per (experiment, arm), per input partition.

Each input partition (of ``<app>.labelled``, then of ``<app>.decisions``:
`loopline.experiments.inputs`) has its own statistics, kept in its own
partition of the compacted changelog ``<app>.experiments.changelog``: one
entry per (experiment, arm), keyed ``<experiment>\\x00<arm>``, its value the whole
`ArmStats` as it stands (compaction keeps the last). The changelog entries of
a batch are written in the transaction that commits its input offsets
(`loopline.stream.state`), so the statistics count every example exactly
once, also after a ``kill -9``. An experiment's totals are the sum over
partitions (`read_statistics`, `totals`).

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> read_statistics(log, "shop")   # nothing yet, not even the topic
{}
>>> log.close()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

from loopline.experiments.arm_stats import ArmStats, decode_stats, encode_stats
from loopline.log import Log, LogError, Record
from loopline.stream import names
from loopline.stream.state import StateCodec
from loopline.stream.table import read_table

__all__ = [
    "ArmsState",
    "ArmsStateCodec",
    "LabelledOutcome",
    "Totals",
    "read_statistics",
    "state_key",
    "totals",
]

Totals = dict[str, dict[str, ArmStats]]
"""Experiment name -> arm name -> statistics."""


class LabelledOutcome(msgspec.Struct, frozen=True):
    """What the watcher reads of a labelled example (`loopline.outcomes.labelled`)."""

    label: float
    experiment: str = ""
    arm: str = ""
    score: float | None = None
    arm_probability: float = 1.0


@dataclass
class ArmsState:
    """The statistics of one input partition, and which entries changed since the last dump."""

    arms: dict[tuple[str, str], ArmStats] = field(default_factory=dict)
    changed: set[tuple[str, str]] = field(default_factory=set)

    def add(self, outcome: LabelledOutcome) -> None:
        key = (outcome.experiment, outcome.arm)
        stats = self.arms.get(key)
        if stats is None:
            stats = self.arms[key] = ArmStats()
        stats.add(outcome.label, outcome.score)
        self.changed.add(key)

    def add_decision(
        self, experiment: str, arm: str, latency_ms: float, *, error: bool = False
    ) -> None:
        key = (experiment, arm)
        stats = self.arms.get(key)
        if stats is None:
            stats = self.arms[key] = ArmStats()
        stats.add_decision(latency_ms, error=error)
        self.changed.add(key)


def state_key(experiment: str, arm: str) -> bytes:
    """The changelog key of one arm's statistics."""
    return f"{experiment}\x00{arm}".encode()


def _parse_key(key: bytes) -> tuple[str, str]:
    experiment, _, arm = key.decode().partition("\x00")
    return experiment, arm


class ArmsStateCodec(StateCodec[int, ArmsState]):
    """How `ArmsState` is restored from and written to the changelog."""

    def new(self, unit: int) -> ArmsState:
        return ArmsState()

    def load(self, state: ArmsState, key: bytes, value: bytes | None) -> None:
        if value is None:
            state.arms.pop(_parse_key(key), None)
        else:
            state.arms[_parse_key(key)] = decode_stats(value)

    def settle(self, state: ArmsState) -> None:
        state.changed.clear()

    def dump(self, unit: int, state: ArmsState) -> Iterable[tuple[bytes, bytes | None]]:
        for key in sorted(state.changed):
            yield state_key(*key), encode_stats(state.arms[key])
        state.changed.clear()


def totals(partitions: Iterable[Mapping[tuple[str, str], ArmStats]]) -> Totals:
    """The statistics of every (experiment, arm), summed over `partitions`."""
    out: Totals = {}
    for arms in partitions:
        for (experiment, arm), stats in arms.items():
            per_arm = out.setdefault(experiment, {})
            per_arm[arm] = per_arm[arm].merge(stats) if arm in per_arm else stats.merge(ArmStats())
    return out


def read_statistics(log: Log, app_name: str) -> Totals:
    """The statistics the watcher of `app_name` has committed, summed over partitions."""
    topic = names.experiments_changelog(app_name)
    latest: dict[int, dict[tuple[str, str], ArmStats]] = {}

    def apply(record: Record) -> None:
        arms = latest.setdefault(record.partition, {})
        key = _parse_key(record.key or b"")
        if record.value is None:
            arms.pop(key, None)
        else:
            arms[key] = decode_stats(record.value)

    try:
        log.describe_topic(topic)
    except LogError:
        return {}
    read_table(log, topic, apply)
    return totals(latest.values())
