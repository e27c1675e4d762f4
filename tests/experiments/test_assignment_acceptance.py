"""Assignment, as a user of an A/B test sees it: stable everywhere, the split asked for, ramps safe.

The 100,000 units go through the assignment function itself, in this process
and in fresh interpreters (other processes, other hash seeds: a restart);
tests/serving/test_experiment_processes.py checks real ``loopline serve``
processes agree through the decisions they record.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys

import hypothesis.strategies as st
from hypothesis import given, settings

from loopline.experiments.assignment import assign
from loopline.experiments.records import Arm, Experiment
from serving.helpers import SRC

UNITS = [f"member-{i}" for i in range(100_000)]


def split(treatment: float, salt: str = "acceptance", treatments: int = 1) -> Experiment:
    arms = [Arm("control", alias="production", weight=1 - treatment * treatments, control=True)]
    arms += [Arm(f"v{i}", version=i, weight=treatment) for i in range(2, 2 + treatments)]
    return Experiment(name="acceptance", model="ranker", arms=tuple(arms), salt=salt)


def arms_of(experiment: Experiment) -> list[str]:
    return [assign(experiment, unit).arm.name for unit in UNITS]


DIGEST = """
import hashlib, sys
from loopline.experiments.assignment import assign
from loopline.experiments.records import Arm, Experiment
e = Experiment(name="acceptance", model="ranker", salt="acceptance", arms=(
    Arm("control", alias="production", weight=0.9, control=True), Arm("v2", version=2, weight=0.1)))
arms = "".join(assign(e, f"member-{i}").arm.name[-1] for i in range(100_000))
print(hashlib.sha256(arms.encode()).hexdigest())
"""


def test_100000_units_get_the_same_arm_in_every_process_and_after_a_restart() -> None:
    here = "".join(a[-1] for a in arms_of(split(0.1)))
    expected = hashlib.sha256(here.encode()).hexdigest()
    env = {**os.environ, "PYTHONPATH": SRC}
    digests = []
    for seed in ("0", "1", "2", "random"):  # 3 processes, then a restart; each hashes str anew
        env["PYTHONHASHSEED"] = seed
        done = subprocess.run(
            [sys.executable, "-c", DIGEST], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        digests.append(done.stdout.strip())
    assert digests == [expected] * 4


def test_a_10_90_split_measures_10_percent_within_half_a_point() -> None:
    share = arms_of(split(0.1)).count("v2") / len(UNITS)
    assert abs(share - 0.10) <= 0.005, share


def test_ramping_10_to_50_percent_moves_no_unit_out_of_treatment() -> None:
    steps = [arms_of(split(w)) for w in (0.1, 0.25, 0.5)]
    for smaller, larger in itertools.pairwise(steps):
        moved = [u for u, a, b in zip(UNITS, smaller, larger, strict=True) if a == "v2" != b]
        assert moved == []
    assert abs(steps[-1].count("v2") / len(UNITS) - 0.5) <= 0.005


@settings(max_examples=60, deadline=None)
@given(
    salt=st.text(min_size=1, max_size=12),
    treatments=st.integers(1, 3),
    weights=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=5),
)
def test_raising_weights_only_ever_moves_units_from_control_into_treatment(
    salt: str, treatments: int, weights: list[float]
) -> None:
    ramp = sorted(w / treatments for w in weights)
    units = UNITS[:2_000]
    before = None
    for weight in ramp:
        e = split(weight, salt, treatments)
        now = [assign(e, u).arm.name for u in units]
        if before is not None:
            for was, becomes in zip(before, now, strict=True):
                assert was == "control" or was == becomes  # a treated unit stays in its arm
        before = now
