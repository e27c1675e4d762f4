"""The model a prediction service answers with: loaded, checked, and ready to score.

A `ServedModel` is built from a verified artifact (the registry's
`AliasFollower` checks the signature and the SHA-256 first) and checked
before it may serve: every feature the version lists must be declared by the
application, the features may describe the model's entity and at most one
other entity (the candidates of ``rank``), and the model must score a vector
of that length. A version that fails is refused with the reason, and the
version serving keeps serving.

>>> from loopline.app import App
>>> from loopline.features import Entity, FeatureSet, Table, TableFeature
>>> from loopline.models.declarations import Model
>>> member, item = Entity("member", "member_id"), Entity("item", "item_id")
>>> features = FeatureSet(tables=[
...     Table("profiles", member, [TableFeature("age", "age", default=30)]),
...     Table("items", item, [TableFeature("price", "price")])])
>>> entities_of(features, ["age", "price"])
['member', 'item']
>>> candidate_entity(features, "member", ["age", "price"], "accept", 2)
'item'
>>> candidate_entity(features, "member", ["clicks"], "accept", 2)
Traceback (most recent call last):
...
loopline.models.signing.ModelLoadError: model 'accept' v2 refused: it reads features the application does not declare: clicks (declared: age, price)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loopline.features.declarations import Derived, FeatureSet
from loopline.models.registry_records import ModelVersion
from loopline.models.signing import ModelLoadError
from loopline.models.trainers import load_trainer
from loopline.serving.requests import ServingError

__all__ = ["ServedModel", "candidate_entity", "entities_of", "load_served"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A checked model version and what scoring needs: its features in input order."""

    version: ModelVersion
    scorer: Any  # a trainer: .predict(rows) -> one score per row
    features: tuple[str, ...]
    entity: str
    candidate_entity: str | None
    defaults: dict[str, Any]

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def number(self) -> int:
        return self.version.version

    def score(self, rows: list[dict[str, Any]]) -> list[float]:
        """One score per row; `ServingError` (a 500) when the model raises or gives a score that
        is not a number."""
        try:
            scores = [float(s) for s in self.scorer.predict(rows)]
        except Exception as exc:
            logger.exception("model %r v%d failed to score", self.name, self.number)
            raise ServingError(
                500, f"model {self.name!r} v{self.number} failed to score: {exc}"
            ) from None
        if not all(math.isfinite(s) for s in scores):
            raise ServingError(
                500, f"model {self.name!r} v{self.number} gave a score that is not a number"
            )
        return scores


def entities_of(features: FeatureSet, names: Sequence[str]) -> list[str]:
    """The entities whose features `names` read (derived ones through their inputs), in order."""
    owner: dict[str, str] = {}
    for group in features.aggregations:
        for f in group.features:
            owner[f.name] = group.entity.name
    for table in features.tables:
        for f in table.features:
            owner[f.name] = table.entity.name
    found: dict[str, None] = {}

    def visit(name: str) -> None:
        feature = features[name]
        if isinstance(feature, Derived):
            for source in feature.inputs:
                visit(source)
        else:
            found[owner[name]] = None

    for name in names:
        visit(name)
    return list(found)


def candidate_entity(
    features: FeatureSet, entity: str, names: Sequence[str], model: str, version: int
) -> str | None:
    """The entity of ``rank``'s candidates (None: the model scores `entity` alone)."""
    what = f"model {model!r} v{version} refused"
    declared = set(features.names())
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ModelLoadError(
            f"{what}: it reads features the application does not declare: {', '.join(unknown)} "
            f"(declared: {', '.join(features.names()) or 'none'})"
        )
    others = [e for e in entities_of(features, names) if e != entity]
    if len(others) > 1:
        raise ModelLoadError(
            f"{what}: its features describe entities {', '.join(others)} besides {entity!r}; "
            "a served model reads its entity's features and at most one candidate entity's"
        )
    return others[0] if others else None


def load_served(
    data: bytes, version: ModelVersion, features: FeatureSet, entity: str
) -> ServedModel:
    """The `ServedModel` of verified artifact `data`, or `ModelLoadError` saying why not."""
    what = f"model {version.name!r} v{version.version} refused"
    names = tuple(version.feature_names)
    if not names:
        raise ModelLoadError(f"{what}: its version lists no features, so nothing can be served")
    candidates = candidate_entity(features, entity, names, version.name, version.version)
    try:
        scorer = load_trainer(data, version.format)
    except Exception as exc:
        raise ModelLoadError(
            f"{what}: its {version.format} artifact does not load: {exc}"
        ) from None
    try:
        scores = scorer.predict([dict.fromkeys(names, 0.0)])
        score = float(scores[0])
        if len(scores) != 1:
            raise ValueError(f"{len(scores)} scores for one row")
    except Exception as exc:
        raise ModelLoadError(
            f"{what}: it does not score a vector of its {len(names)} features: {exc}"
        ) from None
    if not math.isfinite(score):
        raise ModelLoadError(f"{what}: it scores a vector of zeros as {score}")
    defaults = {name: getattr(features[name], "default", None) for name in names}
    return ServedModel(version, scorer, names, entity, candidates, defaults)
