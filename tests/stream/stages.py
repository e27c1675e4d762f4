"""Every kind of long-running stage, described the same way for the fault harness.

A `Stage` knows how to prepare its inputs, make its task for an application
name (in this process, or in a child process by `tests/stream/child.py`),
and check what a run that suffered faults left on the log against what a
clean run of a second application left: the exactly-once promise of that
stage, said in one place per stage.

Each stage is built from a `base` name only, so a child process builds the
very same stage from the command line. A stage imports its task's modules where it
uses them: a child process of one stage then starts without importing the others'
(the serving stack, LightGBM, River...), which the kill -9 harness does three times
per test.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from loopline.app import App
from loopline.contracts import LogRegistry
from loopline.experiments.records import Arm, Experiment, ExperimentError
from loopline.features import Aggregations, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Sum
from loopline.log import Log, TopicConfig
from loopline.models import HmacSigner, ModelRegistry
from loopline.models.declarations import Model
from loopline.outcomes import Outcomes
from loopline.stream import names
from support import read_all

KEY = "the fault harness' signing secret"
MINUTE = 60_000
T0 = 1_714_564_800_000  # 2024-05-01 12:00 UTC


class Running(Protocol):
    def run(self, stop: threading.Event | None = None, **kw: Any) -> Any: ...
    def close(self) -> None: ...


@dataclass
class Stage:
    """What the harness needs of a stage; see the module docstring."""

    base: str
    kind: str = ""
    clean_run: bool = True  # whether verify compares with a clean run of a second application
    bad: int = 0  # unreadable inputs fed so far
    fed: int = 0  # inputs fed so far
    extra: dict = field(default_factory=dict)

    def prepare(self, log: Log) -> None: ...
    def feed(self, log: Log, rng: random.Random, n: int, apps: list[str]) -> None: ...
    def task(self, log: Log, app: str, instance: str) -> Running: ...
    def verify(self, log: Log, crashed: str, clean: str) -> None: ...
    def finish(self, running: Running) -> Any:
        return running.run(until_caught_up=True)


# -- features ------------------------------------------------------------------------------


class Features(Stage):
    """The feature processor: per-member counts and sums, a profile table."""

    def __init__(self, base: str) -> None:
        super().__init__(base, "features")
        self.events, self.profiles = f"{base}-events", f"{base}-profiles"

    def app(self, name: str) -> App:
        member = Entity("member", "member_id")
        return App(
            name,
            features=FeatureSet(
                [
                    Aggregations(
                        self.events,
                        member,
                        [
                            *Count.per_window("events", windows=["lifetime"]),
                            *Sum.per_window("spent", field="amount", windows=["lifetime"]),
                        ],
                        time="at",
                        lateness="1m",
                    )
                ],
                tables=[Table(self.profiles, member, [TableFeature("city", "city", default="")])],
            ),
        )

    def prepare(self, log: Log) -> None:
        log.create_topic(self.events, TopicConfig(partitions=3))
        log.create_topic(self.profiles, TopicConfig(partitions=1, compact=True))

    def feed(self, log: Log, rng: random.Random, n: int, apps: list[str]) -> None:
        producer = log.producer()
        for _ in range(n):
            member = f"m{rng.randrange(40)}"
            self.fed += 1
            if rng.random() < 0.03:  # unreadable: a dead letter
                producer.send(self.events, b'{"amount": 1', member.encode())
                self.bad += 1
                continue
            at = T0 + self.fed * 1000 - rng.randrange(3) * 90_000  # some later than 1m: late
            event = {"member_id": member, "amount": rng.randrange(100), "at": at}
            producer.send(self.events, json.dumps(event).encode(), member.encode())
            if rng.random() < 0.1:
                profile = {"member_id": member, "city": rng.choice(["Ghent", "Lyon", "Oslo"])}
                producer.send(self.profiles, json.dumps(profile).encode(), member.encode())
        producer.flush()
        producer.close()

    def task(self, log: Log, app: str, instance: str) -> Running:
        from loopline.features.processor import FeatureProcessor

        return FeatureProcessor(
            log, self.app(app), instance=instance, commit_interval=0.05, max_batch=50
        )

    def verify(self, log: Log, crashed: str, clean: str) -> None:
        from loopline.features.store import FeatureStore

        members = [f"m{i}" for i in range(40)]
        at = T0 + 10**10
        with (
            FeatureStore(log, self.app(crashed)) as after,
            FeatureStore(log, self.app(clean)) as once,
        ):
            after.catch_up()
            once.catch_up()
            expected = once.get("member", members, at=at)
            assert after.get("member", members, at=at) == expected
            assert any(v["events_lifetime"] for v in expected)
        late = [len(read_all(log, names.features_late(a))) for a in (crashed, clean)]
        assert late[0] == late[1] > 0, late
        assert len(read_all(log, names.dead_letters(self.events))) == 2 * self.bad > 0


# -- outcomes ------------------------------------------------------------------------------


def _decision(did: str, entity: str, at: int, returned: list[str]) -> dict:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1000)) + f".{at % 1000:03d}Z"
    return {
        "decision_id": did,
        "at": iso,
        "kind": "rank",
        "model": "pymk",
        "model_version": 1,
        "entity_name": "member",
        "entity": entity,
        "context": {},
        "candidates": [
            {"id": c, "score": 1.0 / (i + 1), "features": {"rank": i}}
            for i, c in enumerate(returned)
        ],
        "returned": [
            {"id": c, "score": 1.0 / (i + 1), "probability": 1.0} for i, c in enumerate(returned)
        ],
        "latency_ms": 1.0,
    }


class Outcomes_(Stage):
    """The outcome joiner: ranked decisions, outcomes for some returned items."""

    def __init__(self, base: str) -> None:
        super().__init__(base, "outcomes")

    def app(self, name: str) -> App:
        return App(name, outcomes=Outcomes(window="5m", positive=["accepted"]))

    def prepare(self, log: Log) -> None:
        self.extra["apps"] = []

    def _create(self, log: Log, app: str) -> None:
        for topic in (names.decisions(app), names.outcomes(app)):
            if topic not in log.list_topics():
                log.create_topic(topic, TopicConfig(partitions=2))

    def feed(self, log: Log, rng: random.Random, n: int, apps: list[str]) -> None:
        for app in apps:
            self._create(log, app)
        rows = []
        for _ in range(n):
            self.fed += 1
            at = T0 + self.fed * 5_000
            member = f"m{rng.randrange(30)}"
            if rng.random() < 0.03:
                rows.append(("decisions", member, b"{not json", at))
                self.bad += 1
                continue
            shown = rng.sample([f"m{i}" for i in range(30, 60)], 2)
            rows.append(
                (
                    "decisions",
                    member,
                    json.dumps(_decision(f"d-{self.fed}", member, at, shown)).encode(),
                    at,
                )
            )
            for item in shown:
                if rng.random() < 0.4:
                    outcome = {
                        "entity": member,
                        "type": "accepted",
                        "item": item,
                        "at": _decision("", "", at + 1000, [])["at"],
                    }
                    rows.append(("outcomes", member, json.dumps(outcome).encode(), at + 1000))
        producer = log.producer()
        for app in apps:
            for which, member, value, at in rows:
                topic = names.decisions(app) if which == "decisions" else names.outcomes(app)
                producer.send(topic, value, member.encode(), timestamp=at)
        producer.flush()
        producer.close()

    def task(self, log: Log, app: str, instance: str) -> Running:
        from loopline.outcomes.joiner import OutcomeJoiner

        clock = T0  # windows close by event time only: a clock that closed them at catch-up
        # would make later decisions late, so runs caught up at different moments would differ
        return OutcomeJoiner(
            log,
            self.app(app),
            instance=instance,
            commit_interval=0.05,
            max_batch=25,
            clock=lambda: clock,
        )

    def verify(self, log: Log, crashed: str, clean: str) -> None:
        def examples(app: str) -> collections.Counter:
            return collections.Counter(r.value for r in read_all(log, names.labelled(app)))

        after, once = examples(crashed), examples(clean)
        assert after == once and sum(once.values()) > 0
        dead = [
            len(read_all(log, names.dead_letters(names.decisions(a)))) for a in (crashed, clean)
        ]
        assert dead == [self.bad, self.bad] and self.bad > 0, dead


# -- the stream scorer ---------------------------------------------------------------------


class Scorer(Stage):
    """`serve --from/--to`: requests scored into answers by a LightGBM model."""

    def __init__(self, base: str) -> None:
        super().__init__(base, "scorer", clean_run=False)
        self.profiles, self.requests = f"{base}-profiles", f"{base}-requests"
        self.model = f"{base}-model"

    def app(self, name: str) -> App:
        from loopline.models.trainers import LightGBMTrainer

        member = Entity("member", "member_id")
        return App(
            self.base,  # one application; the run's name picks its answers topic and group
            features=FeatureSet(
                tables=[Table(self.profiles, member, [TableFeature("age", "age")])]
            ),
            models=[Model(self.model, trainer=LightGBMTrainer, entity="member", features=["age"])],
        )

    def prepare(self, log: Log) -> None:
        from loopline.features.processor import FeatureProcessor
        from loopline.models.trainers import LightGBMTrainer

        for topic in (self.profiles, self.requests):
            log.create_topic(topic, TopicConfig(partitions=2 if topic == self.requests else 1))
        producer = log.producer()
        for i in range(20):
            producer.send(self.profiles, json.dumps({"member_id": f"m{i}", "age": 20 + i}).encode())
        producer.flush()
        producer.close()
        processor = FeatureProcessor(log, self.app(self.base))
        processor.run_until_caught_up()
        processor.close()
        rng = np.random.default_rng(0)
        ages = rng.uniform(18, 50, 300)
        trainer = LightGBMTrainer({"num_leaves": 4, "min_data_in_leaf": 5}, num_boost_round=5)
        trainer.fit(ages[:, None], (ages > 30).astype(int), features=["age"])
        data, fmt = trainer.save()
        registry = ModelRegistry(log, signer=HmacSigner(KEY.encode()))
        version = registry.publish(
            self.model, data, format=fmt, trainer="lightgbm", features=[("age", "float")]
        )
        registry.promote(self.model, version.version, "production")
        registry.close()

    def feed(self, log: Log, rng: random.Random, n: int, apps: list[str]) -> None:
        producer = log.producer()
        for _ in range(n):
            self.fed += 1
            member = f"m{rng.randrange(20)}"
            if rng.random() < 0.05:
                producer.send(
                    self.requests, b'{"entity": 7}', member.encode()
                )  # refused: a dead letter
                self.bad += 1
            else:
                producer.send(
                    self.requests, json.dumps({"entity": member}).encode(), member.encode()
                )
        producer.flush()
        producer.close()

    def task(self, log: Log, app: str, instance: str) -> Running:
        import os
        import tempfile

        from loopline.serving.service import PredictionService
        from loopline.serving.stream import StreamScorer

        # The key the service trusts, for this task only: tests that run later in this
        # process must not find it (they would trust models they did not sign).
        was = os.environ.get("LOOPLINE_SIGNING_KEY")
        os.environ["LOOPLINE_SIGNING_KEY"] = KEY
        service = PredictionService(
            log, self.app(app), LogRegistry(log), state_dir=tempfile.mkdtemp()
        )
        scorer = StreamScorer(
            service, self.requests, f"{self.base}.answers", instance=instance, max_batch=20
        )
        close = scorer.close

        def close_both() -> None:
            close()
            service.close()
            if was is None:
                os.environ.pop("LOOPLINE_SIGNING_KEY", None)
            else:
                os.environ["LOOPLINE_SIGNING_KEY"] = was

        scorer.close = close_both  # type: ignore[method-assign]
        return scorer

    def verify(self, log: Log, crashed: str, clean: str) -> None:
        from loopline.serving.stream import REQUEST_OFFSET, REQUEST_PARTITION

        # One application (the stage's): every request has exactly one answer or dead letter.
        # There is no clean run to compare with: decisions carry fresh ids and times.
        answers = read_all(log, f"{self.base}.answers")
        offsets = collections.Counter(
            (int(dict(r.headers)[REQUEST_PARTITION]), int(dict(r.headers)[REQUEST_OFFSET]))
            for r in answers
        )
        dead = read_all(log, names.dead_letters(self.requests))
        offsets.update(
            (
                int(dict(r.headers)["loopline.dlq.partition"]),
                int(dict(r.headers)["loopline.dlq.offset"]),
            )
            for r in dead
        )
        assert max(offsets.values()) == 1, "a request was answered twice"
        assert sum(offsets.values()) == self.fed, (sum(offsets.values()), self.fed)
        assert len(dead) == self.bad > 0
        scores = {json.loads(r.value)["entity"]: json.loads(r.value)["score"] for r in answers}
        assert len(set(scores)) > 1


# -- the online trainer --------------------------------------------------------------------


class Online(Stage):
    """`train --online`: River learns from a topic of labelled examples, a version now and then."""

    def __init__(self, base: str) -> None:
        super().__init__(base, "online")
        self.examples = f"{base}-examples"

    def app(self, name: str) -> App:
        from river import linear_model

        from loopline.models.trainers import RiverTrainer

        model = Model(
            f"{name}-m",
            entity="member",
            trainer=lambda: RiverTrainer(linear_model.LogisticRegression()),
        )
        return App(name, models=[model])

    def prepare(self, log: Log) -> None:
        log.create_topic(self.examples)  # one partition: the same order for every run

    def feed(self, log: Log, rng: random.Random, n: int, apps: list[str]) -> None:
        producer = log.producer()
        for _ in range(n):
            self.fed += 1
            if rng.random() < 0.03:
                producer.send(self.examples, b'{"features": {"x": 1}}')  # no label: a dead letter
                self.bad += 1
                continue
            x = rng.random()
            example = {"features": {"x": x, "y": rng.random()}, "label": x > 0.5}
            producer.send(self.examples, json.dumps(example).encode())
        producer.flush()
        producer.close()

    def task(self, log: Log, app: str, instance: str) -> Running:
        from loopline.models.online import train_online

        stage = self

        class Trainer:
            def __init__(self) -> None:
                self.registry = ModelRegistry(log, signer=HmacSigner(KEY.encode()))

            def run(self, stop=None, *, until_caught_up=False, on_commit=None, **kw):
                return train_online(
                    log,
                    stage.app(app),
                    f"{app}-m",
                    stage.examples,
                    registry=self.registry,
                    every_examples=40,
                    every_seconds=0.2,
                    stop=stop,
                    until_caught_up=until_caught_up,
                    on_publish=None if on_commit is None else lambda v: on_commit(self),
                )

            def close(self) -> None:
                self.registry.close()

        return Trainer()

    def verify(self, log: Log, crashed: str, clean: str) -> None:
        from loopline.models.trainers import load_trainer

        registry = ModelRegistry(log, signer=HmacSigner(KEY.encode()))
        try:
            last = {a: registry.versions(f"{a}-m")[-1] for a in (crashed, clean)}
            learned = {a: v.manifest["examples"] for a, v in last.items()}
            assert learned[crashed] == learned[clean] == self.fed - self.bad, learned
            probe = [{"x": i / 10, "y": 0.5} for i in range(11)]
            predictions = {}
            for a, version in last.items():
                trainer = load_trainer(registry.load_artifact(version), version.format)
                predictions[a] = trainer.predict(probe)
            assert np.allclose(predictions[crashed], predictions[clean], rtol=0, atol=1e-12)
        finally:
            registry.close()
        assert len(read_all(log, names.dead_letters(self.examples))) >= 2 * self.bad > 0


# -- the experiment watcher ----------------------------------------------------------------


class Experiments(Stage):
    """`experiments run`: a bandit's outcomes and decisions (with their latency) counted per
    arm, its weights moved by them.

    The application of run `app` is ``<app>-x``: the broker outage test runs every stage
    under one application name, and the outcome joiner's stage writes decisions too.
    """

    def __init__(self, base: str) -> None:
        super().__init__(base, "experiments")

    def prepare(self, log: Log) -> None:
        self.extra["started"] = set()

    def _start(self, log: Log, app: str) -> None:
        from loopline.experiments.registry import ExperimentRegistry

        app = f"{app}-x"
        if app in self.extra.setdefault("started", set()):
            return
        for topic in (names.labelled(app), names.decisions(app)):
            if topic not in log.list_topics():
                log.create_topic(topic, TopicConfig(partitions=2))
        registry = ExperimentRegistry(log)
        arms = (
            Arm("control", alias="production", weight=0.5, control=True),
            Arm("v2", version=2, weight=0.5),
        )
        with contextlib.suppress(ExperimentError):  # a child process started it already
            registry.start(
                Experiment(name=f"{app}-e", model=f"{app}-m", arms=arms, policy="bandit")
            )
        registry.close()
        self.extra["started"].add(app)

    def feed(self, log: Log, rng: random.Random, n: int, apps: list[str]) -> None:
        for app in apps:
            self._start(log, app)
        rows = []
        for _ in range(n):
            self.fed += 1
            member = f"m{rng.randrange(30)}"
            if rng.random() < 0.03:
                rows.append((member, None))
                self.bad += 1
                continue
            arm = rng.choice(["control", "v2"])
            rate = 0.2 if arm == "control" else 0.5
            latency = rng.lognormvariate(3.0, 0.5)
            rows.append((member, (arm, float(rng.random() < rate), rng.random(), latency)))
        producer = log.producer()
        for app in (f"{a}-x" for a in apps):
            for i, (member, row) in enumerate(rows):
                at = T0 + i * 1000
                if row is None:
                    producer.send(names.labelled(app), b'{"label": "yes"', member.encode())
                    producer.send(names.decisions(app), b'{"kind": 7}', member.encode())
                    continue
                arm, label, score, latency = row
                example = {"label": label, "experiment": f"{app}-e", "arm": arm, "score": score}
                decision = _decision(f"d-{i}", member, at, [member]) | {
                    "latency_ms": latency,
                    "experiment": f"{app}-e",
                    "arm": arm,
                }
                producer.send(names.labelled(app), json.dumps(example).encode(), member.encode())
                producer.send(names.decisions(app), json.dumps(decision).encode(), member.encode())
        producer.flush()
        producer.close()

    def task(self, log: Log, app: str, instance: str) -> Running:
        from loopline.experiments.watcher import ExperimentWatcher

        return ExperimentWatcher(
            log,
            App(f"{app}-x"),
            instance=instance,
            commit_interval=0.05,
            max_batch=25,
            interval=0.05,
        )

    def verify(self, log: Log, crashed: str, clean: str) -> None:
        from loopline.experiments.arm_state import read_statistics
        from loopline.experiments.registry import ExperimentRegistry

        crashed, clean = f"{crashed}-x", f"{clean}-x"
        after, once = read_statistics(log, crashed), read_statistics(log, clean)
        assert after[f"{crashed}-e"] == once[f"{clean}-e"], (after, once)
        counted = sum(s.n for s in once[f"{clean}-e"].values())
        decisions = sum(s.decisions for s in once[f"{clean}-e"].values())
        assert counted == decisions == self.fed - self.bad > 0
        dead = [len(read_all(log, names.dead_letters(names.labelled(a)))) for a in (crashed, clean)]
        assert dead == [self.bad, self.bad] and self.bad > 0, dead
        # unreadable decisions are skipped: the outcome joiner dead-letters them, not twice
        assert names.dead_letters(names.decisions(crashed)) not in log.list_topics()
        registry = ExperimentRegistry(log)
        try:
            history = registry.history(f"{crashed}-e")
        finally:
            registry.close()
        assert history[-1].weights["v2"] > 0.5, history[-1]  # the bandit acted on its counts
        assert all(w >= 0.05 for e in history for w in e.weights.values())


# -- the monitor ---------------------------------------------------------------------------


class Monitor_(Stage):
    """The monitor: decisions and labelled examples in 1-minute windows, with bad ones of each."""

    def __init__(self, base: str) -> None:
        super().__init__(base, "monitor")

    @staticmethod
    def own(app: str) -> str:
        """An application name of its own: the outage harness gives every stage the same one,
        and the scorer and the joiner write and read ``<app>.decisions`` too."""
        return f"{app}-monitor"

    def feed(self, log: Log, rng: random.Random, n: int, apps: list[str]) -> None:
        apps = [self.own(a) for a in apps]
        for app in apps:
            for topic in (names.decisions(app), names.labelled(app)):
                if topic not in log.list_topics():
                    log.create_topic(topic)
        rows = []
        for _ in range(n):
            self.fed += 1
            at = T0 + self.fed * 5_000
            member = f"m{rng.randrange(30)}"
            if rng.random() < 0.03:
                rows.append(("decisions" if rng.random() < 0.5 else "labelled", member, b"{", at))
                self.bad += 1
                continue
            decision = _decision(f"d-{self.fed}", member, at, rng.sample(["a", "b", "c"], 2))
            decision["latency_ms"] = rng.lognormvariate(0, 1)
            decision["arm"] = rng.choice(["x", "y"])
            rows.append(("decisions", member, json.dumps(decision).encode(), at))
            if rng.random() < 0.5:
                example = {
                    "features": {"rank": 0}, "label": float(rng.random() < 0.3), "at": at,
                    "decision_id": f"d-{self.fed}", "model": "pymk", "model_version": 1,
                    "entity": member, "item": "a", "position": 0, "probability": 1.0,
                    "score": rng.random(), "experiment": "", "arm": decision["arm"],
                    "outcomes": [], "closed_at": at + 60_000,
                }  # fmt: skip
                rows.append(("labelled", member, json.dumps(example).encode(), at + 60_000))
        producer = log.producer()
        for app in apps:
            for which, member, value, at in rows:
                topic = names.decisions(app) if which == "decisions" else names.labelled(app)
                producer.send(topic, value, member.encode(), timestamp=at)
        producer.flush()
        producer.close()

    def prepare(self, log: Log) -> None:
        self.extra["apps"] = []

    def task(self, log: Log, app: str, instance: str) -> Running:
        from loopline.monitor.task import Monitor

        # One partition per input (the monitor runs one member) and windows closed by event
        # time only: a clock closing them at catch-up would differ between runs.
        return Monitor(
            log, App(self.own(app)), windows=["1m"], lateness="0s", instance=instance,
            commit_interval=0.05, max_batch=25, clock=lambda: T0,
        )  # fmt: skip

    def verify(self, log: Log, crashed: str, clean: str) -> None:
        crashed, clean = self.own(crashed), self.own(clean)

        def records(topic: str) -> collections.Counter:
            return collections.Counter(r.value for r in read_all(log, topic))

        for topic in (names.monitor, names.alerts):
            after, once = records(topic(crashed)), records(topic(clean))
            assert after == once, topic(crashed)
        assert sum(records(names.monitor(clean)).values()) > 0
        dead = [
            len(read_all(log, names.dead_letters(t(a))))
            for a in (crashed, clean)
            for t in (names.decisions, names.labelled)
        ]
        assert sum(dead[:2]) == sum(dead[2:]) == self.bad and self.bad > 0, dead


KINDS = {
    "experiments": Experiments,
    "features": Features,
    "outcomes": Outcomes_,
    "scorer": Scorer,
    "online": Online,
    "monitor": Monitor_,
}


def stage(kind: str, base: str) -> Stage:
    return KINDS[kind](base)
