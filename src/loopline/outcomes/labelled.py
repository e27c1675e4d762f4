"""Labelled examples: a decision's served features plus the label its outcomes gave.

The joiner writes one example per returned item of a rank decision (one per
predict decision) to ``<app>.labelled``, keyed by the entity and stamped with
the decision's time. The features are exactly those of the decision, so a
model trained on them cannot suffer from training/serving skew; the trainers
read this topic directly (``loopline train APP --labelled APP.labelled``).

An example is a `LabelledExample` (contract ``loopline.labelled`` v2, JSON):
``features`` (the candidate's features as served), ``label`` (1.0/0.0, or the
sum of the positive outcomes' values), ``at`` (the decision's time, epoch ms),
``decision_id``, ``model``, ``model_version``, ``entity``, ``item``,
``position`` (0-based, in the answer), ``probability`` and ``score`` (as
returned), ``experiment``, ``arm``, ``outcomes`` (the types of every outcome
joined to the item, sorted), ``closed_at`` (the end of the window, epoch
ms) and ``arm_probability`` (the probability the decision's arm was chosen
with, 1.0 with no experiment; new in v2, so a v1 example decodes with 1.0). `examples` gives them as dicts of exactly those fields in that order, so
a dict and its `LabelledExample` encode to the same bytes, and the examples
written before the record existed decode as records.

>>> decision = {"decision_id": "d-1", "at": "2024-05-01T12:00:00Z", "kind": "rank",
...     "model": "pymk", "model_version": 2, "entity": "m-1", "experiment": "", "arm": "",
...     "candidates": [{"id": "m-7", "score": 0.9, "features": {"same_city": 1}},
...                    {"id": "m-8", "score": 0.4, "features": {"same_city": 0}}],
...     "returned": [{"id": "m-7", "score": 0.9, "probability": 1.0}]}
>>> (example,) = examples(decision, 1714564800000, [("accepted", "m-7", 1.0)],
...                       Outcomes(window="1h"), closed_at=1714568400000)
>>> example["item"], example["position"], example["label"], example["features"]
('m-7', 0, 1.0, {'same_city': 1})
>>> record = LabelledExample(**example)
>>> record.item, record.label, msgspec.json.encode(record) == msgspec.json.encode(example)
('m-7', 1.0, True)
>>> msgspec.json.decode(msgspec.json.encode(example), type=LabelledExample) == record
True
>>> labelled_topic("pymk"), labelled_examples_topic("pymk").contract
('pymk.labelled', 'loopline.labelled')
"""

from __future__ import annotations

from typing import Any

import msgspec

from loopline.contracts import Topic
from loopline.outcomes.declarations import Outcomes
from loopline.serving.decisions import Value
from loopline.stream import names

__all__ = ["CONTRACT", "LabelledExample", "examples", "labelled_examples_topic", "labelled_topic"]

CONTRACT = "loopline.labelled"


class LabelledExample(msgspec.Struct, frozen=True):
    """One labelled example: a returned item of a decision, with the label its outcomes gave
    (contract ``loopline.labelled`` v2; the fields are described in the module docstring).

    Times are epoch milliseconds, as the joiner has always written them. Later versions
    may only add fields with defaults (the registry's ``backward`` rule).
    """

    features: dict[str, Value]
    label: float
    at: int
    decision_id: str
    model: str
    model_version: int
    entity: str
    item: str
    position: int
    probability: float
    score: float | None
    experiment: str
    arm: str
    outcomes: list[str]
    closed_at: int
    arm_probability: float = 1.0


def labelled_topic(app_name: str) -> str:
    """The topic the joiner writes the labelled examples of `app_name` to."""
    return names.labelled(app_name)


def labelled_examples_topic(app_name: str, *, partitions: int = 1) -> Topic[LabelledExample]:
    """The labelled examples topic of application `app_name` (``<app>.labelled``), bound to
    the contract ``loopline.labelled`` when it is created with a registry."""
    return Topic(
        labelled_topic(app_name),
        LabelledExample,
        key="entity",
        time="at",
        encoding="json",
        contract=CONTRACT,
        partitions=partitions,
    )


def examples(
    decision: dict[str, Any],
    at: int,
    matched: list[tuple[str, str, float]],
    outcomes: Outcomes,
    *,
    closed_at: int,
) -> list[dict[str, Any]]:
    """The labelled examples of `decision` (decoded JSON), its window closed with `matched`.

    `matched` holds (type, item, value) of every outcome joined to it.
    """
    features = {c["id"]: c for c in decision["candidates"]}
    out = []
    for position, returned in enumerate(decision["returned"]):
        item = returned["id"]
        hits = [(t, v) for t, i, v in matched if i == item]
        positive = [v for t, v in hits if outcomes.counts(t)]
        label = float(sum(positive)) if outcomes.label == "value" else float(bool(positive))
        candidate = features.get(item, {})
        out.append(
            {
                "features": candidate.get("features", {}),
                "label": label,
                "at": at,
                "decision_id": decision["decision_id"],
                "model": decision["model"],
                "model_version": decision["model_version"],
                "entity": decision["entity"],
                "item": item,
                "position": position,
                "probability": returned.get("probability", 1.0),
                "score": returned.get("score"),
                "experiment": decision.get("experiment", ""),
                "arm": decision.get("arm", ""),
                "outcomes": sorted(t for t, _ in hits),
                "closed_at": closed_at,
                "arm_probability": decision.get("arm_probability", 1.0),
            }
        )
    return out
