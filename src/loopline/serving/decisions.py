"""The decision contract: what the prediction service writes for every answer it gives.

Every answer of ``/v1/predict`` and ``/v1/rank`` becomes one `Decision` on the
application's decisions topic (``<app>.decisions``), bound to the contract
``loopline.decision`` (the `Decision` below, JSON-encoded, is version 3:
version 1 without ``arm_probability`` and ``error``, version 2 without
``error``; versions may only add fields with defaults, the registry's
``backward`` rule, so a v1 decision still decodes, with an
``arm_probability`` of 1.0 and no error).
The record key is the entity id, so one entity's decisions stay in order in
one partition; the record timestamp is the decision's time.

A decision holds everything needed to learn from it later without
training/serving skew: the request (entity and context), the model version,
every candidate with its score and the feature values exactly as the model
saw them (also the candidates that were not returned), what was returned in
which order with the probability it was chosen (1.0 for a deterministic
ranking), the experiment and arm that answered (empty with no experiment)
with the probability that arm was chosen with (1.0 with no experiment), and
the latency. A request the answering version failed (a model that raised or
gave a score that is not a number: the client got a 5xx) is a decision too,
with its ``error`` and no candidates, so each arm's error rate is counted
(the experiments' ``error_rate`` guardrail). So is a request refused for an
entity the online features hold nothing of (the client got a 404): its
``error`` starts ``404:`` (`is_unknown_entity`), which the monitor counts as
its unknown-entity rate and not as a failure of the version. Delivery is at least once: a consumer that must not count a
decision twice keys on `Decision.decision_id`.

>>> import datetime
>>> d = Decision(decision_id="0190a6f4-9d2e-7a3b-8c4d-5e6f7a8b9c0d",
...     at=datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC), kind="rank",
...     model="accept", model_version=3, entity_name="member", entity="m-1",
...     context={"page": "home"},
...     candidates=[Candidate("i-1", 0.2, {"views_1h": 4}), Candidate("i-2", 0.9, {"views_1h": 0})],
...     returned=[Returned("i-2", 0.9, 1.0)], latency_ms=1.5)
>>> msgspec.json.decode(msgspec.json.encode(d), type=Decision) == d
True
>>> from loopline.contracts import avro_schema
>>> [f["name"] for f in avro_schema(Decision)["fields"]][:4]
['decision_id', 'at', 'kind', 'model']
>>> decisions_topic("shop").name
'shop.decisions'
"""

from __future__ import annotations

import datetime
from typing import Literal

import msgspec

from loopline.contracts import ContractViolation, Topic
from loopline.stream import names

__all__ = [
    "CONTRACT",
    "Candidate",
    "Decision",
    "Returned",
    "Value",
    "check_values",
    "decisions_topic",
    "is_unknown_entity",
    "unknown_entity_error",
]

CONTRACT = "loopline.decision"

Value = str | int | float | bool | None
"""A feature or context value: decisions carry scalars only."""

_SCALARS = frozenset({str, int, float, bool, type(None)})


class Candidate(msgspec.Struct, frozen=True):
    """One scored candidate: its id, its score, and the features the model saw for it.

    For ``predict`` the one candidate is the entity itself.
    """

    id: str
    score: float
    features: dict[str, Value]


class Returned(msgspec.Struct, frozen=True):
    """One item of the answer, in answer order, with the probability it was chosen."""

    id: str
    score: float
    probability: float = 1.0


UNKNOWN_ENTITY = "404: "


def unknown_entity_error(message: str) -> str:
    """The `Decision.error` of a request refused for an unknown entity.

    >>> is_unknown_entity(unknown_entity_error("unknown member 'm-9'"))
    True
    >>> is_unknown_entity("500: the model raised ValueError"), is_unknown_entity("")
    (False, False)
    """
    return UNKNOWN_ENTITY + message


def is_unknown_entity(error: str) -> bool:
    """Whether decision error `error` is a refusal for an unknown entity, not a failure."""
    return error.startswith(UNKNOWN_ENTITY)


class Decision(msgspec.Struct, frozen=True):
    """One answer of the prediction service (contract ``loopline.decision`` v3).

    `arm_probability` (new in v2) is the probability with which the request
    was assigned to `arm`: the arm's weight for a split or a bandit's draw,
    1.0 with no experiment. An analysis weighs outcomes by its inverse.
    `error` (new in v3): why the version failed to answer (empty when it
    answered), or ``404: ...`` for an entity refused as unknown; such a
    decision has no candidates and returned nothing.
    """

    decision_id: str
    at: datetime.datetime
    kind: Literal["predict", "rank"]
    model: str
    model_version: int
    entity_name: str
    entity: str
    context: dict[str, Value]
    candidates: list[Candidate]
    returned: list[Returned]
    latency_ms: float
    experiment: str = ""
    arm: str = ""
    arm_probability: float = 1.0
    error: str = ""


def decisions_topic(app_name: str, *, partitions: int = 1) -> Topic[Decision]:
    """The decisions topic of application `app_name` (``<app>.decisions``)."""
    return Topic(
        names.decisions(app_name),
        Decision,
        key="entity",
        time="at",
        encoding="json",
        contract=CONTRACT,
        partitions=partitions,
    )


def check_values(decision: Decision) -> None:
    """`ContractViolation` unless every context and feature value of `decision` is a `Value`.

    The service makes the rest of a decision itself, with the contract's types;
    these values come from outside it (the request, the online store), and
    checking only them is a fraction of the cost of a full check of the record.

    >>> at = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)
    >>> d = Decision("0190a6f4-9d2e-7a3b-8c4d-5e6f7a8b9c0d", at, "predict", "accept", 3,
    ...     "member", "m-1", {}, [Candidate("m-1", 0.5, {"tags": ["a", "b"]})], [], 1.5)
    >>> check_values(d)
    Traceback (most recent call last):
    ...
    loopline.contracts.codecs.ContractViolation: candidate 'm-1' feature 'tags' is list ['a', 'b']: decisions carry scalars only (str, int, float, bool, None)
    """
    types = set(map(type, decision.context.values()))
    for candidate in decision.candidates:
        types.update(map(type, candidate.features.values()))
    if types <= _SCALARS:
        return
    _check_scalars(decision.context, "context value")  # which one, to say so
    for candidate in decision.candidates:
        _check_scalars(candidate.features, f"candidate {candidate.id!r} feature")


def _check_scalars(values: dict[str, Value], what: str) -> None:
    for name, value in values.items():
        if type(value) not in _SCALARS:
            raise ContractViolation(
                f"{what} {name!r} is {type(value).__name__} {value!r}: decisions carry scalars "
                "only (str, int, float, bool, None)"
            )
