"""Version 1 of the demo's model: a hand-written rule, published like any learned version.

The rule is what a team writes before it has any data: suggest people from
the same city, senior ones first. It is fitted as a small LightGBM model to
scores of that rule, so it is an ordinary signed version that the
prediction service loads, verifies and hot-swaps like the learned ones. It
knows nothing of industry or of how active a candidate is, which the
learned versions find in the outcomes.

>>> from loopline.demo.application import FEATURES
>>> rule = heuristic_trainer(FEATURES)
>>> same_city, same_industry = rule.predict([
...     {"same_industry": 0.0, "same_city": 1.0, "seniority_gap": 1.0, "c_seniority": 1,
...      "c_activity": 0.5},
...     {"same_industry": 1.0, "same_city": 0.0, "seniority_gap": 0.0, "c_seniority": 1,
...      "c_activity": 3.0}])
>>> bool(same_city > same_industry)  # the heuristic likes the same city, not the same industry
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loopline.models.trainers import LightGBMTrainer

__all__ = ["heuristic_score", "heuristic_trainer"]


def heuristic_score(same_city: float, c_seniority: float) -> float:
    """The hand-written rule: the same city counts most, then the candidate's seniority."""
    return 2.0 * same_city + 0.3 * c_seniority


def heuristic_trainer(
    features: Sequence[str], seed: int = 0, *, inverted: bool = False
) -> LightGBMTrainer:
    """A fitted trainer that ranks as `heuristic_score` does, reading `features`.

    `features` must include ``same_city`` and ``c_seniority``; the others get
    random values, so the fitted model learns to ignore them. `inverted`: the
    deliberately broken version of ``--bad-model-at``, as a sign error in a
    pipeline would make one: it puts candidates of other industries, and the
    least active, first.
    """
    rng = np.random.default_rng(seed)
    n = 2000
    columns = {name: rng.uniform(0, 4, n) for name in features}
    columns["same_city"] = rng.integers(0, 2, n).astype(float)
    columns["c_seniority"] = rng.integers(0, 4, n).astype(float)
    X = np.column_stack([columns[name] for name in features])
    rule = heuristic_score(columns["same_city"], columns["c_seniority"])
    if inverted:
        columns["same_industry"] = rng.integers(0, 2, n).astype(float)
        rule = -(3.0 * columns["same_industry"] + columns["c_activity"])
    y = (rule + rng.normal(0, 0.3, n) > np.median(rule)).astype(int)
    trainer = LightGBMTrainer({"num_leaves": 4, "min_data_in_leaf": 20}, num_boost_round=20)
    trainer.fit(X, y, features=list(features))
    return trainer
