"""The demo's declared application: "people you may know", and its starting heuristic.

Topics: ``<name>.profiles`` (a table: a member's industry, city, seniority)
and ``<name>.activity`` (profile views and searches). The model ranks
candidate members for a member from features of both (the candidate's are
read from the same profiles table under the entity ``candidate``) and
derived ones across the two: same industry, same city, seniority gap.

>>> app = demo_app("demo-x")
>>> app.model("pymk").features
('same_industry', 'same_city', 'seniority_gap', 'c_seniority', 'views_10m')
>>> heuristic = heuristic_trainer()
>>> same_city, other_city = heuristic.predict([
...     {"same_industry": 0.0, "same_city": 1.0, "seniority_gap": 1.0, "c_seniority": 1,
...      "views_10m": 0},
...     {"same_industry": 1.0, "same_city": 0.0, "seniority_gap": 0.0, "c_seniority": 1,
...      "views_10m": 0}])
>>> bool(same_city > other_city)  # the heuristic likes the same city, not the same industry
True
"""

from __future__ import annotations

import functools

import numpy as np

from loopline.app import App
from loopline.features import Aggregations, Derived, Entity, FeatureSet, Table, TableFeature
from loopline.features.declarations import count
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer
from loopline.outcomes import Outcomes

__all__ = ["FEATURES", "MODEL", "demo_app", "heuristic_trainer"]

MODEL = "pymk"
FEATURES = ("same_industry", "same_city", "seniority_gap", "c_seniority", "views_10m")


def _same(a: object, b: object) -> float:
    return float(a is not None and a == b)


def _gap(a: int | None, b: int | None) -> float:
    return float(abs(a - b)) if a is not None and b is not None else 3.0


def demo_app(name: str, window: str = "3s") -> App:
    """The application of one demo run; `name` prefixes its topics."""
    member = Entity("member", key="member_id")
    candidate = Entity("candidate", key="member_id")
    profiles, activity = f"{name}.profiles", f"{name}.activity"
    fields = [("industry", None), ("city", None), ("seniority", None)]
    features = FeatureSet(
        [
            Aggregations(
                activity,
                member,
                [*count("views", windows=["10m"]), *count("actions", windows=["1h"])],
                time="at",
            )
        ],
        tables=[
            Table(profiles, member, [TableFeature(f, f, d) for f, d in fields]),
            Table(profiles, candidate, [TableFeature(f"c_{f}", f, d) for f, d in fields]),
        ],
        derived=[
            Derived("same_industry", ("industry", "c_industry"), _same, 0.0),
            Derived("same_city", ("city", "c_city"), _same, 0.0),
            Derived("seniority_gap", ("seniority", "c_seniority"), _gap, 3.0),
        ],
    )
    trainer = functools.partial(
        LightGBMTrainer, {"num_leaves": 8, "min_data_in_leaf": 10}, num_boost_round=60
    )
    model = Model(MODEL, trainer=trainer, entity="member", features=list(FEATURES))
    outcomes = Outcomes(window=window, positive=["accepted"])
    return App(name, features=features, models=[model], outcomes=outcomes)


def heuristic_trainer(seed: int = 0) -> LightGBMTrainer:
    """Version 1: a hand-made rule (same city first, then seniority) fitted as a model."""
    rng = np.random.default_rng(seed)
    n = 2000
    X = np.column_stack(
        [
            rng.integers(0, 2, n),  # same_industry
            rng.integers(0, 2, n),  # same_city
            rng.integers(0, 4, n),  # seniority_gap
            rng.integers(0, 4, n),  # c_seniority
            rng.integers(0, 5, n),  # views_10m
        ]
    ).astype(float)
    rule = 2.0 * X[:, 1] + 0.3 * X[:, 3] + rng.normal(0, 0.3, n)
    y = (rule > np.median(rule)).astype(int)
    trainer = LightGBMTrainer({"num_leaves": 4, "min_data_in_leaf": 20}, num_boost_round=20)
    trainer.fit(X, y, features=list(FEATURES))
    return trainer
