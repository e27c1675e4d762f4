"""The watcher's rules without the log: the canary's power over many seeds, the floor, a 2x winner.

The same rules the watcher applies (`guardrails.breach`, `guardrails.winner`,
`ramp.next_step`, `bandit.floored`), on the demo network's truth
(`experiments/simulator.py`), looked at after every batch of decisions.
"""

from __future__ import annotations

import random

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from experiments.simulator import NetworkTruth
from loopline.experiments.arm_stats import ArmStats
from loopline.experiments.assignment import assign
from loopline.experiments.bandit import floored, probability_best
from loopline.experiments.guardrails import breach, winner
from loopline.experiments.ramp import next_step
from loopline.experiments.records import Arm, Experiment, Guardrail, check

GUARD = (Guardrail("acceptance_rate", 0.0),)


def _run(e: Experiment, truth: NetworkTruth, seed: int, batch: int, limit: int):
    """Serve until the rules end the experiment; (decisions, treatment decisions, how it ended)."""
    rng = random.Random(seed)
    stats = {a.name: ArmStats() for a in e.arms}
    treated = 0
    for decisions in range(batch, limit + 1, batch):
        for _ in range(batch):
            arm = assign(e, f"u-{rng.getrandbits(48)}", rng).arm.name
            treated += arm != e.control.name
            for label in truth(arm, rng):
                stats[arm].add(label)
        if breach(e, stats) is not None:
            return decisions, treated, "rolled_back"
        if winner(e, stats) is not None:
            return decisions, treated, "concluded"
        weights = next_step(e, sum(s.n for s in stats.values()))
        if weights is not None:
            arms = tuple(msgspec.structs.replace(a, weight=weights[a.name]) for a in e.arms)
            e = msgspec.structs.replace(e, arms=arms)
    return limit, treated, "running"


def test_a_canary_30_percent_worse_is_rolled_back_early_for_every_seed() -> None:
    truth = NetworkTruth({"control": 1.0, "v2": 0.7})
    worst = (0, 0.0)
    for seed in range(40):
        e = Experiment(
            name="c",
            model="m",
            policy="canary",
            salt=f"s{seed}",
            ramp=(0.02, 0.05, 0.2, 0.5),
            ramp_every=20_000,
            primary="acceptance_rate",
            guardrails=GUARD,
            arms=(
                Arm("control", alias="production", weight=0.98, control=True),
                Arm("v2", version=2, weight=0.02),
            ),
        )
        decisions, treated, state = _run(e, truth, seed, 500, 30_000)
        assert state == "rolled_back", (seed, decisions, treated)
        assert treated < 1_000 and treated < 0.05 * decisions, (seed, decisions, treated)
        worst = max(worst, (treated, treated / decisions))
    print(f"canary 30% worse, 40 seeds: at most {worst[0]} treatment decisions ({worst[1]:.2%})")


def test_a_treatment_twice_as_good_is_declared_better_for_every_seed() -> None:
    truth = NetworkTruth({"control": 1.0, "v2": 2.0})
    needed = []
    for seed in range(40):
        e = Experiment(
            name="w",
            model="m",
            salt=f"s{seed}",
            primary="acceptance_rate",
            guardrails=GUARD,
            arms=(
                Arm("control", alias="production", weight=0.5, control=True),
                Arm("v2", version=2, weight=0.5),
            ),
        )
        decisions, _, state = _run(e, truth, seed, 50, 5_000)
        assert state == "concluded", (seed, decisions)
        needed.append(decisions)
    needed.sort()
    print(
        f"2x better, 40 seeds, 50/50: declared better after a median of {needed[20]} decisions "
        f"(at most {needed[-1]})"
    )


@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=2, max_size=5),
    st.floats(0.0, 0.2),
)
def test_floored_weights_add_up_to_1_and_keep_the_floor(counts, floor) -> None:
    arms = {}
    for i, (hits, misses) in enumerate(counts):
        arms[f"a{i}"] = ArmStats(n=hits + misses, total=hits, squares=hits, hits=hits)
    floor = min(floor, 1.0 / len(arms))
    weights = floored(probability_best(arms, "acceptance_rate", draws=2_000), floor)
    assert all(w >= floor - 1e-4 for w in weights.values())
    e = Experiment(
        name="b",
        model="m",
        policy="bandit",
        floor=0.0,
        arms=tuple(
            Arm(a, version=i + 1, weight=w, control=i == 0)
            for i, (a, w) in enumerate(weights.items())
        ),
    )
    check(e)  # the registry accepts them
