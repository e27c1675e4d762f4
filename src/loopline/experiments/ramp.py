"""Canary ramps: the treatment's weight climbs the experiment's `ramp`, one step at a time.

Step i (the treatment at ``ramp[i]``) is held until the experiment has
``(i + 1) * ramp_every`` outcomes in all, and is left only while the
guardrails hold (the watcher checks them first, and rolls back instead).
Counting outcomes in all, not the treatment's, makes each step last about
the same stretch of traffic: at 1% the treatment's own outcomes would take a
hundred times longer to gather than at 50%.

The step an experiment is on is read from the treatment's weight (the
highest ramp value it has reached), so a person who sets a weight by hand
moves the ramp with it.

>>> from loopline.experiments.records import Arm, Experiment
>>> e = Experiment(name="e", model="m", policy="canary", ramp=(0.01, 0.05, 0.25), ramp_every=500,
...     arms=(Arm("control", alias="production", weight=0.99, control=True),
...           Arm("v2", version=2, weight=0.01)))
>>> next_step(e, 499) is None
True
>>> next_step(e, 500)
{'control': 0.95, 'v2': 0.05}
>>> step(e), len(e.ramp)
(0, 3)
"""

from __future__ import annotations

from loopline.experiments.records import Experiment

__all__ = ["next_step", "step"]


def step(experiment: Experiment) -> int:
    """The ramp step the treatment's weight is on (-1: below the first)."""
    weight = experiment.treatments[0].weight
    return sum(1 for w in experiment.ramp if w <= weight + 1e-9) - 1


def next_step(experiment: Experiment, outcomes: int) -> dict[str, float] | None:
    """The weights of the next step once `outcomes` allow it; None to stay (or at the top)."""
    if experiment.policy != "canary" or not experiment.ramp:
        return None
    at = step(experiment)
    if at + 1 >= len(experiment.ramp) or outcomes < (at + 1) * experiment.ramp_every:
        return None
    weight = experiment.ramp[at + 1]
    return {experiment.control.name: round(1.0 - weight, 10), experiment.treatments[0].name: weight}
