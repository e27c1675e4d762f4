"""Live traffic for the watcher's tests: decisions drawn as serving draws them, outcomes by truth.

`Simulation` serves decisions in batches: each decision's arm comes from the
experiment as the registry has it now (`assign`, as ``loopline serve``
does: sticky buckets for splits and canaries, a draw for a bandit; all to
control once the experiment is no longer running), its labels from the true
acceptance of the arm, and the labelled examples go through the log
(``<app>.labelled``; with `latency`, the decisions too, ``<app>.decisions``)
to the watcher, which then runs until caught up. Between
two batches the watcher has looked once: outcomes arrive one batch late.

Two kinds of truth: `Rates` (one item per decision, a fixed acceptance rate
per arm) and `NetworkTruth` (the demo's network: five suggestions per decision,
the heuristic's picks among 20 random members, each accepted with the
network's true probability times the arm's factor).
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from loopline.demo.network import Network
from loopline.experiments.assignment import assign
from loopline.experiments.records import Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.watcher import ExperimentWatcher
from loopline.log import Log
from loopline.stream import names

Truth = Callable[[str, random.Random], list[float]]


class Rates:
    """One item per decision, accepted with the arm's rate."""

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates

    def __call__(self, arm: str, rng: random.Random) -> list[float]:
        return [float(rng.random() < self.rates[arm])]


class NetworkTruth:
    """Five suggestions per decision on the demo's network, each arm's acceptance times its factor."""

    def __init__(self, factors: dict[str, float], members: int = 400, seed: int = 7) -> None:
        self.network, self.factors = Network(members=members, seed=seed), factors
        self.ids = self.network.ids()

    def __call__(self, arm: str, rng: random.Random) -> list[float]:
        net = self.network
        member = net[rng.choice(self.ids)]
        pool = rng.sample(self.ids, 20)
        pool.sort(key=lambda c: -(2.0 * (net[c].city == member.city) + 0.3 * net[c].seniority))
        factor = self.factors[arm]
        return [
            float(rng.random() < min(1.0, factor * net.acceptance(member.member_id, c)))
            for c in pool[:5]
        ]


@dataclass
class Simulation:
    """Decisions of `experiments` (names) served in batches; see the module docstring."""

    log: Log
    app: str
    registry: ExperimentRegistry
    watcher: ExperimentWatcher
    truth: Truth
    seed: int = 0
    latency: Callable[[str, random.Random], float] | None = None  # ms; None: no decisions written
    decisions: int = 0
    served: collections.Counter = field(default_factory=collections.Counter)
    while_running: collections.Counter = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.producer = self.log.producer()
        self.topic = names.labelled(self.app)
        self.decisions_topic = names.decisions(self.app)

    def serve(self, experiment: str, n: int) -> None:
        """Serve `n` decisions of `experiment` (its arms as they are now) and write their outcomes."""
        self.serve_all([experiment], n)

    def serve_all(self, experiments: list[str], n: int) -> None:
        """Serve `n` decisions of each of `experiments`, then let the watcher look once."""
        rng = self.rng
        for name in experiments:
            e = self.registry.get(name)
            for _ in range(n):
                self.decisions += 1
                unit = f"u-{rng.getrandbits(48)}"
                arm, probability = e.control.name, 1.0
                if e.state == "running":
                    chosen = assign(e, unit, rng)
                    arm, probability = chosen.arm.name, chosen.probability
                    self.while_running[(name, arm)] += 1
                self.served[(name, arm)] += 1
                if self.latency is not None:
                    decision = _decision(e, arm, unit, self.latency(arm, rng))
                    self.producer.send(
                        self.decisions_topic, msgspec.json.encode(decision), unit.encode()
                    )
                for position, label in enumerate(self.truth(arm, rng)):
                    self.producer.send(
                        self.topic,
                        msgspec.json.encode(_example(e, arm, probability, unit, position, label)),
                        unit.encode(),
                    )
        self.producer.flush()
        self.watcher.run_until_caught_up()

    def close(self) -> None:
        self.producer.close()


def _example(
    e: Experiment, arm: str, probability: float, unit: str, position: int, label: float
) -> dict:
    """A labelled example as the joiner writes it, with the arm's probability (decision v2)."""
    version = e.arm(arm).version or 1
    return {
        "features": {"rank": position},
        "label": label,
        "at": 1_714_564_800_000,
        "decision_id": f"{unit}-d",
        "model": e.model,
        "model_version": version,
        "entity": unit,
        "item": f"{unit}-{position}",
        "position": position,
        "probability": 1.0,
        "score": 0.5,
        "experiment": e.name if e.state == "running" else "",
        "arm": arm if e.state == "running" else "",
        "outcomes": ["accepted"] if label else [],
        "closed_at": 1_714_568_400_000,
        "arm_probability": probability,
    }


def _decision(e: Experiment, arm: str, unit: str, latency_ms: float) -> dict:
    """A decision as serving writes it (contract loopline.decision), without candidates."""
    running = e.state == "running"
    return {
        "decision_id": f"{unit}-d",
        "at": "2024-05-01T12:00:00Z",
        "kind": "rank",
        "model": e.model,
        "model_version": e.arm(arm).version or 1,
        "entity_name": "member",
        "entity": unit,
        "context": {},
        "candidates": [],
        "returned": [],
        "latency_ms": latency_ms,
        "experiment": e.name if running else "",
        "arm": arm if running else "",
    }
