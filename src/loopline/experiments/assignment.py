"""Which arm answers a request: sticky buckets for splits and canaries, draws for bandits.

A unit (an entity id, or a context field) hashes with the experiment's salt
to a *bucket* in [0, 1), the same on every server process and after every
restart. Each treatment owns a slot of width 1/k of the bucket line (k
treatments) and takes the first `weight` of it; control takes every bucket
no treatment took. Raising a treatment's weight only grows its range, so a
ramp (1% -> 5% -> 25% -> 50%) moves no unit out of treatment; lowering it
(a rollback) moves units back to control only.

A bandit reshuffles by design: each request draws its arm with the bandit's
current weights, and the decision records the probability it was drawn with,
so its outcomes can be weighted without bias later.

>>> from loopline.experiments.records import Arm, Experiment
>>> e = Experiment(name="e", model="m", salt="s", arms=(
...     Arm("control", alias="production", weight=0.9, control=True), Arm("v2", version=2, weight=0.1)))
>>> 0.0 <= bucket("s", "member-1") < 1.0
True
>>> [i for i in range(30) if assign(e, f"member-{i}").arm.name == "v2"]
[14, 24]
>>> assign(e, "member-14").probability
0.1
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from loopline.experiments.records import Arm, Experiment

__all__ = ["Assignment", "assign", "bucket"]

_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Assignment:
    """The arm a request goes to, and the probability it had of going there."""

    arm: Arm
    probability: float


def bucket(salt: str, unit: str) -> float:
    """The unit's place in [0, 1) for an experiment salted `salt`: uniform, stable, independent."""
    digest = hashlib.blake2b(f"{salt}\x00{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign(experiment: Experiment, unit: str, rng: random.Random | None = None) -> Assignment:
    """The arm of `unit` in `experiment` (a draw from `rng` for a bandit)."""
    arms = experiment.arms
    if experiment.policy == "bandit":
        point = (rng or random).random()
        for arm in arms:
            point -= arm.weight
            if point < 0.0:
                return Assignment(arm, arm.weight)
        heaviest = max(arms, key=lambda a: a.weight)  # rounding left a sliver over
        return Assignment(heaviest, heaviest.weight)
    point = bucket(experiment.salt, unit)
    treatments = [a for a in arms if not a.control]
    slot = 1.0 / len(treatments)
    index = min(int(point / slot), len(treatments) - 1)
    treatment = treatments[index]
    if point - index * slot < treatment.weight:
        return Assignment(treatment, treatment.weight)
    control = experiment.control
    return Assignment(control, control.weight)
