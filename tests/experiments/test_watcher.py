"""The experiment watcher on live traffic, both backends: bandit, rollback, conclusion, A/A.

Decisions are drawn as serving draws them and their outcomes go through the
log to the watcher (`experiments/simulator.py`); each test prints the figures
it measured.
"""

from __future__ import annotations

import json
import threading

import pytest
from prometheus_client import REGISTRY

from experiments.simulator import NetworkTruth, Rates, Simulation
from loopline.app import App
from loopline.experiments.arm_state import read_statistics
from loopline.experiments.records import Arm, Experiment, Guardrail
from loopline.experiments.registry import ExperimentRegistry
from loopline.experiments.watcher import ExperimentWatcher
from loopline.models import HmacSigner, ModelRegistry
from loopline.stream import names
from support import unique

SIGNER = HmacSigner(b"the watcher tests' secret")


@pytest.fixture
def registry(log):
    registry = ExperimentRegistry(log)
    yield registry
    registry.close()


def _latency(control: float, treatment: float):
    """Latencies (ms) log-normal around 20 ms, times the arm's factor."""

    def draw(arm: str, rng) -> float:
        return (control if arm == "control" else treatment) * rng.lognormvariate(3.0, 0.5)

    return draw


def _watch(log, registry, app: str, **kwargs) -> ExperimentWatcher:
    return ExperimentWatcher(log, App(app), experiments=registry, interval=0, **kwargs)


def test_a_bandit_moves_traffic_to_the_better_arm_and_keeps_the_floor(log, registry) -> None:
    app, name = unique("bandit"), unique("ranker-bandit")
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(
        Experiment(
            name=name,
            model=name,
            arms=arms,
            policy="bandit",
            primary="acceptance_rate",
            floor=0.05,
            salt="s1",
        )
    )
    watcher = _watch(log, registry, app)
    sim = Simulation(log, app, registry, watcher, Rates({"control": 0.14, "v2": 0.38}), seed=1)
    try:
        for _ in range(30):  # 3,000 decisions, the watcher looks after every 100
            sim.serve(name, 100)
        weights = registry.get(name).weights
        history = registry.history(name)
    finally:
        sim.close()
        watcher.close()
    better = sim.served[(name, "v2")] / sim.decisions
    print(
        f"bandit 14% vs 38%: after {sim.decisions} decisions the better arm has weight "
        f"{weights['v2']:.3f}; it served {better:.1%} of all decisions; "
        f"{len(history) - 1} weight changes written"
    )
    assert weights["v2"] >= 0.9
    assert all(w >= 0.05 for e in history for w in e.weights.values())
    assert sim.served[(name, "control")] >= 0.05 * 100  # the floor serves the worse arm too
    assert "thompson sampling on acceptance_rate" in history[-1].reason
    stats = read_statistics(log, app)[name]
    assert stats["control"].n + stats["v2"].n == 3000  # every outcome counted once
    labels = {"app": app, "experiment": name}
    counted = [
        REGISTRY.get_sample_value("loopline_experiments_outcomes_total", labels | {"arm": arm})
        for arm in ("control", "v2")
    ]
    assert counted == [stats["control"].n, stats["v2"].n]
    weight = REGISTRY.get_sample_value("loopline_experiments_weight", labels | {"arm": "v2"})
    assert weight == weights["v2"]


def test_a_canary_that_accepts_30_percent_less_is_rolled_back_early(log, registry) -> None:
    app, name = unique("canary"), unique("ranker-canary")
    arms = (
        Arm("control", alias="production", weight=0.98, control=True),
        Arm("v2", version=2, weight=0.02),
    )
    registry.start(
        Experiment(
            name=name,
            model=name,
            arms=arms,
            policy="canary",
            salt="s2",
            ramp=(0.02, 0.05, 0.2, 0.5),
            ramp_every=20_000,  # outcomes: 4,000 decisions of 5 suggestions
            primary="acceptance_rate",
            guardrails=(Guardrail("acceptance_rate", 0.0),),
        )
    )
    watcher = _watch(log, registry, app)
    truth = NetworkTruth({"control": 1.0, "v2": 0.7})
    sim = Simulation(log, app, registry, watcher, truth, seed=2)
    try:
        while registry.get(name).state == "running" and sim.decisions < 20_000:
            sim.serve(name, 500)
        at_rollback = sim.decisions
        sim.serve(name, 1_000)  # and after: every decision goes to control
        final = registry.get(name)
    finally:
        sim.close()
        watcher.close()
    treated = sim.while_running[(name, "v2")]
    print(
        f"canary 30% worse (demo network): rolled back after {at_rollback} decisions, "
        f"{treated} of them ({treated / at_rollback:.2%}) served by the treatment; "
        f"verdict {final.verdict}"
    )
    assert final.state == "rolled_back"
    assert treated < 1_000 and treated < 0.05 * at_rollback
    assert sim.served[(name, "v2")] == treated  # nothing served by it after the rollback
    v = final.verdict
    assert v is not None and (v.metric, v.arm) == ("acceptance_rate", "v2")
    assert v.estimate < 0 and v.low <= v.estimate <= v.high < 0 and v.units > 0
    assert "guardrail acceptance_rate breached by v2" in final.reason
    assert watcher.stats.rollbacks == 1


def test_a_treatment_that_accepts_twice_as_often_is_concluded_and_promoted(log, registry) -> None:
    app, model, name = unique("winner"), unique("ranker"), unique("ranker-2x")
    models = ModelRegistry(log, signer=SIGNER)
    for _ in range(2):
        models.publish(model, b"model", format="bytes", trainer="test", features=[("x", "float")])
    models.promote(model, 1, "production")
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(
        Experiment(
            name=name,
            model=model,
            arms=arms,
            salt="s3",
            primary="acceptance_rate",
            guardrails=(Guardrail("acceptance_rate", 0.0),),
            auto_conclude=True,
        )
    )
    watcher = _watch(log, registry, app, models=models)
    sim = Simulation(log, app, registry, watcher, NetworkTruth({"control": 1.0, "v2": 2.0}), seed=3)
    try:
        while registry.get(name).state == "running" and sim.decisions < 10_000:
            sim.serve(name, 100)
        final = registry.get(name)
        alias = models.alias(model, "production")
        history = models.alias_history(model, "production")
    finally:
        sim.close()
        watcher.close()
        models.close()
    print(
        f"2x better (demo network, 50/50 split): concluded after {sim.decisions} decisions; "
        f"verdict {final.verdict}"
    )
    assert final.state == "concluded"
    assert final.verdict is not None and final.verdict.arm == "v2" and final.verdict.low > 0
    assert alias is not None and alias.version == 2
    assert name in (history[-1].reason or "")
    assert "production -> v2" in final.reason


def test_a_a_experiments_are_rarely_flagged(log, registry) -> None:
    app = unique("aa")
    names = [unique(f"aa{i}") for i in range(20)]
    for i, name in enumerate(names):
        arms = (
            Arm("control", version=1, weight=0.5, control=True),
            Arm("b", version=2, weight=0.5),
        )
        registry.start(
            Experiment(
                name=name,
                model=name,
                arms=arms,
                salt=f"aa{i}",
                primary="acceptance_rate",
                guardrails=(Guardrail("acceptance_rate", 0.0), Guardrail("p99_latency_ms", 0.0)),
                auto_conclude=True,
            )
        )
    watcher = _watch(log, registry, app)
    truth = Rates({"control": 0.2, "b": 0.2})
    sim = Simulation(log, app, registry, watcher, truth, seed=4, latency=_latency(1.0, 1.0))
    try:
        for _ in range(20):  # 2,000 decisions each, looked at after every 100 of each
            sim.serve_all(names, 100)
        flagged = [registry.get(n) for n in names if registry.get(n).state != "running"]
    finally:
        sim.close()
        watcher.close()
    print(
        f"A/A (acceptance and p99 latency guardrails): {len(flagged)} of {len(names)} "
        f"experiments flagged: {[e.verdict for e in flagged]}"
    )
    assert len(flagged) <= 2


def test_a_stopped_experiment_is_left_alone(log, registry) -> None:
    app, name = unique("stopped"), unique("ranker-stopped")
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=name, arms=arms, policy="bandit"))
    watcher = _watch(log, registry, app)
    sim = Simulation(log, app, registry, watcher, Rates({"control": 0.1, "v2": 0.5}), seed=5)
    try:
        sim.serve(name, 300)
        moved = registry.get(name)
        assert moved.weights["v2"] > 0.5 and moved.by
        person = ExperimentRegistry(log)
        person.set_weights(name, {"control": 0.7, "v2": 0.3}, reason="a person's choice")
        person.stop(name, reason="enough")
        person.close()
        sim.serve(name, 300)
        final = registry.get(name)
    finally:
        sim.close()
        watcher.close()
    assert (final.state, final.reason, final.weights) == (
        "stopped",
        "enough",
        {"control": 0.7, "v2": 0.3},
    )


def test_a_canary_with_a_slower_p99_is_rolled_back_on_latency(log, registry) -> None:
    app, name = unique("slow"), unique("ranker-slow")
    arms = (
        Arm("control", alias="production", weight=0.95, control=True),
        Arm("v2", version=2, weight=0.05),
    )
    registry.start(
        Experiment(
            name=name,
            model=name,
            arms=arms,
            policy="canary",
            salt="s7",
            ramp=(0.05, 0.2, 0.5),
            ramp_every=5_000,
            primary="acceptance_rate",
            guardrails=(Guardrail("acceptance_rate", 0.0), Guardrail("p99_latency_ms", 0.2)),
        )
    )
    watcher = _watch(log, registry, app)
    truth = Rates({"control": 0.2, "v2": 0.2})  # as good, but 1.6 times slower
    sim = Simulation(log, app, registry, watcher, truth, seed=7, latency=_latency(1.0, 1.6))
    try:
        while registry.get(name).state == "running" and sim.decisions < 20_000:
            sim.serve(name, 500)
        final = registry.get(name)
    finally:
        sim.close()
        watcher.close()
    treated = sim.while_running[(name, "v2")]
    print(
        f"canary 1.6x slower: rolled back after {sim.decisions} decisions, {treated} by the "
        f"treatment; verdict {final.verdict}"
    )
    v = final.verdict
    assert final.state == "rolled_back" and v is not None
    assert (v.metric, v.arm) == ("p99_latency_ms", "v2")
    assert v.low > 0  # slower for sure (by more than 20% of control's p99: the rule)
    assert v.low <= v.estimate <= v.high and v.units == watcher.stats.decisions
    assert "guardrail p99_latency_ms breached by v2" in final.reason


class _PersonMeanwhile(ExperimentRegistry):
    """A real registry on the real log, where a person stops `name` right after the watcher's
    first read of the registry: between its read and its change."""

    def __init__(self, log, name: str) -> None:
        super().__init__(log)
        self.name, self.person_acted = name, False

    def refresh(self):
        changes = super().refresh()
        if not self.person_acted and self.get(self.name).revision == 1:
            self.person_acted = True
            person = ExperimentRegistry(self.log)
            person.stop(self.name, reason="a person stopped it")
            person.close()
        return changes


def test_the_watcher_never_undoes_a_change_a_person_made_meanwhile(log) -> None:
    app, name = unique("race"), unique("ranker-race")
    registry = _PersonMeanwhile(log, name)
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=name, arms=arms, policy="bandit", salt="r"))
    watcher = _watch(log, registry, app)
    sim = Simulation(log, app, registry, watcher, Rates({"control": 0.1, "v2": 0.6}), seed=6)
    try:
        sim.serve(name, 300)  # the watcher would move the weights: the person stopped it first
        sim.serve(name, 300)
        history = registry.history(name)
    finally:
        sim.close()
        watcher.close()
        registry.close()
    assert registry.person_acted and watcher.stats.conflicts == 1
    assert [(e.state, e.reason) for e in history] == [
        ("running", "started"),
        ("stopped", "a person stopped it"),
    ]
    assert watcher.stats.weights == 0


def test_a_watcher_acts_on_outcomes_its_predecessor_counted_but_never_looked_at(
    log, registry
) -> None:
    app, name = unique("heir"), unique("ranker-heir")
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=name, arms=arms, policy="bandit", salt="h"))
    # The first watcher counts and commits, but would look only after a day: it stops first.
    first = ExperimentWatcher(log, App(app), experiments=registry, interval=86_400)
    producer = log.producer()
    for arm, label in [("control", 0.0), ("v2", 1.0)] * 150:
        example = {"label": label, "experiment": name, "arm": arm}
        producer.send(names.labelled(app), json.dumps(example).encode(), b"m")
    producer.flush()
    producer.close()
    stop = threading.Event()
    try:
        first.run(stop, on_commit=lambda w: w.stats.examples == 300 and stop.set())
    finally:
        first.close()
    assert sum(s.n for s in read_statistics(log, app)[name].values()) == 300
    assert registry.get(name).revision == 1  # nobody looked
    second = _watch(log, registry, app)
    try:
        second.run_until_caught_up()
    finally:
        second.close()
    assert second.stats.examples == 0 and registry.get(name).weights["v2"] >= 0.9


def test_a_winner_whose_alias_cannot_move_is_left_running_and_said(log, registry, caplog):
    app, name = unique("nomodel"), unique("ranker-nomodel")  # no versions were published
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=name, arms=arms, salt="n", auto_conclude=True))
    watcher = _watch(log, registry, app)
    sim = Simulation(log, app, registry, watcher, Rates({"control": 0.1, "v2": 0.6}), seed=10)
    try:
        sim.serve(name, 400)
        sim.serve(name, 400)
    finally:
        sim.close()
        watcher.close()
    assert registry.get(name).state == "running"
    said = [r.getMessage() for r in caplog.records if "cannot move" in r.getMessage()]
    assert len(said) == 1 and "conclude it by hand" in said[0], said


def test_a_winner_whose_alias_move_would_be_refused_is_left_running(
    log, registry, caplog, monkeypatch
):
    for var in ("LOOPLINE_SIGNING_KEY", "LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    app, model, name = unique("unsigned"), unique("ranker"), unique("ranker-unsigned")
    publisher = ModelRegistry(log, signer=SIGNER)
    for _ in range(2):
        publisher.publish(model, b"model", format="bytes", trainer="test", features=[])
    publisher.promote(model, 1, "production")
    arms = (
        Arm("control", alias="production", weight=0.5, control=True),
        Arm("v2", version=2, weight=0.5),
    )
    registry.start(Experiment(name=name, model=model, arms=arms, salt="u", auto_conclude=True))
    # A watcher that verifies alias moves but holds no signing key: its move would be refused.
    models = ModelRegistry(log, verifier=SIGNER.verifier())
    watcher = _watch(log, registry, app, models=models)
    sim = Simulation(log, app, registry, watcher, Rates({"control": 0.1, "v2": 0.6}), seed=10)
    try:
        sim.serve(name, 400)
        sim.serve(name, 400)
        publisher.refresh()
        assert publisher.aliases(model) == {"production": 1}
    finally:
        sim.close()
        watcher.close()
        models.close()
        publisher.close()
    assert registry.get(name).state == "running"
    said = [r.getMessage() for r in caplog.records if "cannot move" in r.getMessage()]
    assert len(said) == 1 and "unsigned" in said[0] and "conclude it by hand" in said[0], said
