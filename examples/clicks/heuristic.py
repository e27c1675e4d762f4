"""Publish a hand-written rule as a version of the ranker: a cold start without history.

    python heuristic.py [--alias production]

Before there is any history to learn from, a team still has to rank
something. This publishes a rule as the next version of ``ranker``, signed
like any learned version, so that ``loopline serve`` loads it, verifies it
and later hot-swaps it for a learned one without a restart. The rule is a
logistic regression whose weights are written by hand rather than fitted:
items of the category the user clicked last first, then items that are
clicked often, then cheaper ones (with no history at all, the price is all
there is). Every feature the model declares is an input (the unused ones
weigh 0), so the rule is a drop-in version of the same model.

The log comes from ``$LOOPLINE_LOG`` (default ``embedded:./.loopline``), the
signing key from ``$LOOPLINE_SIGNING_KEY`` or ``$LOOPLINE_SIGNING_KEY_FILE``,
as for ``loopline train``.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression

from clicks import FEATURES
from loopline.log import open_log
from loopline.models import ModelRegistry
from loopline.models.trainers import SklearnTrainer

WEIGHTS = {"same_category": 2.0, "item_ctr": 8.0, "price": -0.02}  # others weigh 0
INTERCEPT = -3.0


def rule() -> SklearnTrainer:
    """The rule as a trainer: a logistic regression with the weights set, not learned."""
    regression = LogisticRegression()
    regression.classes_ = np.array([0, 1])
    regression.coef_ = np.array([[WEIGHTS.get(name, 0.0) for name in FEATURES]])
    regression.intercept_ = np.array([INTERCEPT])
    regression.n_features_in_ = len(FEATURES)
    trainer = SklearnTrainer(regression)
    trainer.features = tuple(FEATURES)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ranker")
    parser.add_argument("--alias", default="production")
    args = parser.parse_args()
    trainer = rule()
    artifact, format = trainer.save()
    log = open_log()
    models = ModelRegistry(log)
    try:
        version = models.publish(
            args.model, artifact, format=format, trainer=trainer.name, params=WEIGHTS,
            features=[(name, "float") for name in FEATURES],
        )  # fmt: skip
        models.promote(args.model, version.version, args.alias, reason="cold start: a rule")
    finally:
        models.close()
        log.close()
    print(f"published {args.model} v{version.version} (a rule: {WEIGHTS}); "
          f"alias {args.alias} -> v{version.version}")  # fmt: skip


if __name__ == "__main__":
    main()
