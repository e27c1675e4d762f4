"""What an experiment is, as it lives on the log: one record per change.

An experiment compares versions of one model on live traffic. Each *arm*
names a model version (``version=3``) or an alias (``alias="production"``);
exactly one arm is the *control*. The *policy* says how requests are split:

- ``split`` (A/B): each unit keeps its arm for the experiment's life, by a
  hash of (salt, unit); the arms' weights say what share each gets.
- ``bandit``: Thompson sampling moves the weights towards the arm with the
  better primary metric as outcomes arrive; no arm gets less than `floor`.
- ``canary``: the treatment's weight follows `ramp`, one step at a time, and
  advances only while the guardrails hold.

The *unit* is what keeps an arm: ``entity`` (the request's entity, the
default) or ``context.<field>`` (a field of the request's context).

Every change (start, a new weight, stop, conclusion, rollback) is a whole
new `Experiment` record with the next `revision`, the time, who made it and
why, keyed ``experiment/<name>/<revision>/<write id>`` in the compacted topic
``_loopline_experiments``. Keys never repeat (the write id is new for every
write), so compaction keeps the whole history; when two writers race for one
revision, the first in log order holds it and the other's change is void (it
reads the topic and decides again).

>>> control = Arm("control", alias="production", weight=0.9, control=True)
>>> treatment = Arm("v7", version=7, weight=0.1)
>>> e = Experiment(name="ranker-v7", model="ranker", arms=(control, treatment), salt="s1")
>>> e.control.name, [a.name for a in e.treatments], e.weights
('control', ['v7'], {'control': 0.9, 'v7': 0.1})
>>> decode(encode(e)) == e
True
>>> change_key("ranker-v7", 3, "9f2c")
'experiment/ranker-v7/000000000003/9f2c'
>>> check(Experiment(name="x", model="m", arms=(control,)))
Traceback (most recent call last):
...
loopline.experiments.records.ExperimentError: experiment 'x' has 1 arm: give a control and at least one treatment
"""

from __future__ import annotations

import math
import re
from typing import Literal

import msgspec

__all__ = [
    "METRICS",
    "Arm",
    "Experiment",
    "ExperimentError",
    "Guardrail",
    "Verdict",
    "change_key",
    "check",
    "decode",
    "encode",
]

Policy = Literal["split", "bandit", "canary"]
State = Literal["running", "stopped", "concluded", "rolled_back"]
Metric = Literal["mean_label", "acceptance_rate", "log_loss", "auc", "error_rate", "p99_latency_ms"]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]
"""The metrics an experiment can watch; the first four come from labelled examples."""

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class ExperimentError(ValueError):
    """An experiment that cannot be started or changed as asked (the message says why)."""


class Arm(msgspec.Struct, frozen=True):
    """One arm: a model version or an alias, its share of traffic, and whether it is control."""

    name: str
    version: int | None = None
    alias: str | None = None
    weight: float = 0.0
    control: bool = False


class Guardrail(msgspec.Struct, frozen=True):
    """A metric a treatment must not make worse than control by more than `margin` (relative).

    ``Guardrail("mean_label", 0.1)``: a treatment whose mean label is, with the
    sequential test's confidence, below 90% of control's is rolled back.
    """

    metric: Metric
    margin: float = 0.0


class Verdict(msgspec.Struct, frozen=True):
    """The evidence behind an automatic change: the metric, its estimate and interval, the units."""

    metric: str
    arm: str
    estimate: float
    low: float
    high: float
    units: int


class Experiment(msgspec.Struct, frozen=True):
    """One experiment at one revision (see the module docstring)."""

    name: str
    model: str
    arms: tuple[Arm, ...]
    policy: Policy = "split"
    unit: str = "entity"
    salt: str = ""
    primary: Metric = "mean_label"
    guardrails: tuple[Guardrail, ...] = ()
    alpha: float = 0.05
    floor: float = 0.05
    ramp: tuple[float, ...] = ()
    ramp_every: int = 500
    auto_conclude: bool = False
    state: State = "running"
    reason: str = ""
    verdict: Verdict | None = None
    revision: int = 0
    changed_at: int = 0
    by: str = ""

    @property
    def control(self) -> Arm:
        return next(a for a in self.arms if a.control)

    @property
    def treatments(self) -> list[Arm]:
        return [a for a in self.arms if not a.control]

    @property
    def weights(self) -> dict[str, float]:
        return {a.name: a.weight for a in self.arms}

    def arm(self, name: str) -> Arm:
        """The arm called `name` (`ExperimentError` saying which arms exist if none)."""
        for a in self.arms:
            if a.name == name:
                return a
        raise ExperimentError(
            f"experiment {self.name!r} has no arm {name!r} "
            f"(arms: {', '.join(a.name for a in self.arms)})"
        )


def change_key(name: str, revision: int, write_id: str) -> str:
    """The record key of one write of revision `revision` of experiment `name`."""
    return f"experiment/{name}/{revision:012d}/{write_id}"


def encode(experiment: Experiment) -> bytes:
    return msgspec.json.encode(experiment)


def decode(data: bytes) -> Experiment:
    """The experiment in `data` (msgspec.ValidationError or DecodeError if it is not one)."""
    return msgspec.json.decode(data, type=Experiment)


def check(experiment: Experiment) -> None:
    """`ExperimentError` unless `experiment` can run as declared."""
    e = experiment
    what = f"experiment {e.name!r}"
    if not _NAME.match(e.name):
        raise ExperimentError(
            f"invalid experiment name {e.name!r}: use 1 to 200 letters, digits, '.', '_' or '-'"
        )
    if len(e.arms) < 2:
        raise ExperimentError(
            f"{what} has {len(e.arms)} arm: give a control and at least one treatment"
        )
    names = [a.name for a in e.arms]
    if len(set(names)) != len(names):
        raise ExperimentError(f"{what} names an arm twice: {', '.join(names)}")
    if sum(a.control for a in e.arms) != 1:
        raise ExperimentError(
            f"{what} needs exactly one control arm, not {sum(a.control for a in e.arms)}"
        )
    for a in e.arms:
        if (a.version is None) == (a.alias is None):
            raise ExperimentError(
                f"{what}: arm {a.name!r} must name a model version or an alias (one of them)"
            )
        if not (math.isfinite(a.weight) and 0.0 <= a.weight <= 1.0):
            raise ExperimentError(f"{what}: arm {a.name!r} has weight {a.weight}: use 0 to 1")
    total = sum(a.weight for a in e.arms)
    if abs(total - 1.0) > 1e-9:
        raise ExperimentError(f"{what}: the arms' weights add up to {total:g}, not 1")
    treatments = len(e.arms) - 1
    if e.policy != "bandit" and any(a.weight > 1.0 / treatments + 1e-12 for a in e.treatments):
        # each treatment keeps a slot of 1/treatments of the units (monotone ramps)
        raise ExperimentError(
            f"{what}: with {treatments} treatments each may have at most {1 / treatments:g} "
            "of the traffic"
        )
    if e.unit != "entity" and not (e.unit.startswith("context.") and len(e.unit) > 8):
        raise ExperimentError(f"{what}: unit {e.unit!r} must be 'entity' or 'context.<field>'")
    if not 0.0 < e.alpha < 1.0:
        raise ExperimentError(f"{what}: alpha {e.alpha} must be between 0 and 1")
    if e.policy == "bandit" and not 0.0 <= e.floor * len(e.arms) <= 1.0:
        raise ExperimentError(
            f"{what}: a floor of {e.floor} for {len(e.arms)} arms is more than all the traffic"
        )
    if e.policy == "canary":
        if treatments != 1:
            raise ExperimentError(f"{what}: a canary ramps one treatment, not {treatments}")
        if not e.ramp or any(not 0.0 < w <= 1.0 for w in e.ramp) or list(e.ramp) != sorted(e.ramp):
            raise ExperimentError(
                f"{what}: a canary needs a ramp of increasing weights in (0, 1], e.g. 0.01,0.05,0.25,0.5"
            )
