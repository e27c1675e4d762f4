"""A simulated experiment written to a log: decisions and labelled examples, as serving and the
joiner write them, plus the same records as plain rows for an independent computation."""

from __future__ import annotations

import contextlib
import datetime
import random
import uuid
from dataclasses import dataclass, field

import msgspec

from loopline.experiments.assignment import assign
from loopline.experiments.records import Arm, Experiment
from loopline.experiments.registry import ExperimentRegistry
from loopline.log import Log, TopicConfig, TopicExists
from loopline.outcomes.labelled import LabelledExample
from loopline.serving.decisions import Candidate, Decision, Returned
from loopline.stream import names

HOUR = 3_600_000
START = 1_714_564_800_000  # 2024-05-01T12:00Z


@dataclass
class Simulated:
    experiment: Experiment
    app: str
    decisions: list[dict] = field(default_factory=list)  # arm, unit, page, at, returned
    examples: list[dict] = field(
        default_factory=list
    )  # decision_id, arm, unit, page, label, score, age


def simulate(
    log: Log,
    *,
    units: int = 600,
    rate: dict[str, float] | None = None,
    novelty: float = 0.0,
    drop: tuple[str, float] | None = None,
    per_unit: tuple[int, int] = (1, 4),
    unit_field: str = "entity",
    seed: int = 1,
    control_weight: float = 0.5,
    start: int = START,
    spread: int = 6 * HOUR,
    then: Simulated | None = None,
) -> Simulated:
    """Start a 50/50 experiment and write each unit's decisions (1 to 4, spread over two days)
    (`per_unit`) and one labelled example per decision. A treatment's acceptance rate is
    ``rate[arm] + novelty`` in the unit's first six hours. `drop` = (arm, share) loses
    that share of the arm's decisions (and their examples) on the way to the log. With
    `unit_field` ``context.session`` the unit is a session in the context, not the entity.
    `then`: go on with that simulation's experiment as it is now on the log, and new units."""
    rng = random.Random(seed)
    rate = rate or {"control": 0.2, "v2": 0.2}
    app = then.app if then else f"app-{uuid.uuid4().hex[:10]}"
    arms = (
        Arm("control", alias="production", weight=control_weight, control=True),
        Arm("v2", version=2, weight=1 - control_weight),
    )
    registry = ExperimentRegistry(log)
    if then:
        experiment = registry.get(then.experiment.name)
    else:
        name = f"exp-{uuid.uuid4().hex[:10]}"
        experiment = registry.start(
            # the salt from the seed: which units go to which arm is the same in every run
            # (a drawn salt gave the honest run of the SRM test a mismatch once, p < 0.001)
            Experiment(
                name=name, model=f"ranker-{name}", arms=arms, unit=unit_field, salt=f"s{seed}"
            ),
            reason="test",
        )
    registry.close()
    name = experiment.name
    offset = 1_000_000 if then else 0  # new units: names no earlier unit had
    for topic in (names.decisions(app), names.labelled(app)):
        with contextlib.suppress(TopicExists):
            log.create_topic(topic, TopicConfig(partitions=2))
    out = Simulated(experiment, app)
    producer = log.producer()
    for u in range(offset, offset + units):
        unit = f"member-{u}" if unit_field == "entity" else f"session-{u}"
        arm = assign(experiment, unit).arm.name
        first = start + rng.randrange(0, spread)
        for k in range(rng.randint(*per_unit)):
            age = 0 if k == 0 else rng.randrange(0, 48 * HOUR)
            at = first + age
            if drop and drop[0] == arm and rng.random() < drop[1]:
                continue
            page = rng.choice(["home", "search", "profile"])
            decision_id = uuid.uuid4().hex
            score = rng.random()
            p = rate[arm] + (novelty if arm != "control" and age < 6 * HOUR else 0.0)
            label = float(rng.random() < p * (0.5 + score))
            when = datetime.datetime.fromtimestamp(at / 1000, tz=datetime.UTC)
            context = {"page": page}
            entity = unit
            if unit_field != "entity":  # the unit is a context field; the entity varies
                context[unit_field.removeprefix("context.")] = unit
                entity = f"member-{rng.randrange(units)}"
            decision = Decision(
                decision_id, when, "rank", "ranker", 2 if arm == "v2" else 1, "member", entity,
                context, [Candidate("i-1", score, {"views": k}), Candidate("i-2", 0.1, {"views": 0})],
                [Returned("i-1", score, 1.0)], 1.0 + rng.random(), experiment=name, arm=arm,
            )  # fmt: skip
            producer.send(
                names.decisions(app), msgspec.json.encode(decision), entity.encode(), timestamp=at
            )
            example = LabelledExample(
                {"views": k}, label, at, decision_id, "ranker", 1, entity, "i-1", 0, 1.0, score,
                name, arm, ["accepted"] if label else [], at + HOUR,
            )  # fmt: skip
            producer.send(
                names.labelled(app), msgspec.json.encode(example), entity.encode(), timestamp=at
            )
            out.decisions.append({"arm": arm, "unit": unit, "page": page, "at": at, "first": first})
            out.examples.append(
                {
                    "arm": arm,
                    "unit": unit,
                    "page": page,
                    "label": label,
                    "score": score,
                    "age": age,
                    "views": k,
                }
            )
    producer.flush()
    producer.close()
    return out
