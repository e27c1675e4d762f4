"""The outcome contract: what happened after a decision (a click, an accepted invitation, ...).

An outcome names its decision by ``decision_id``, or by the entity and the
``item`` it is about: then it is about the most recent decision of that
entity that returned the item. Either way it counts only if it happened
(``at``) within the attribution window after the decision, and not before
it. Without an item, an outcome is about the entity itself (the one item
of a predict decision); with a decision id but no item, about the top of a
ranked answer.
Outcomes are keyed by the entity, like decisions, so that an entity's
decisions and outcomes share a partition number; ``at`` is the outcome's
event time (the joiner reads it from the value, not the record timestamp).

>>> import datetime
>>> o = Outcome(entity="m-1", type="accepted", at=datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
...             item="m-7")
>>> msgspec.json.decode(msgspec.json.encode(o), type=Outcome) == o
True
>>> outcomes_topic("pymk").name
'pymk.outcomes'
"""

from __future__ import annotations

import datetime

import msgspec

from loopline.contracts import Topic
from loopline.stream import names

__all__ = ["CONTRACT", "Outcome", "outcomes_topic"]

CONTRACT = "loopline.outcome"


class Outcome(msgspec.Struct, frozen=True):
    """One outcome (contract ``loopline.outcome`` v1).

    `entity` is the decision's entity (and the record key); `type` what
    happened; `value` how much (1.0 by default: a click, an acceptance);
    `decision_id` or `item` say which decision and which returned item.
    """

    entity: str
    type: str
    at: datetime.datetime
    decision_id: str = ""
    item: str = ""
    value: float = 1.0


def outcomes_topic(app_name: str, *, partitions: int = 1) -> Topic[Outcome]:
    """The outcomes topic of application `app_name` (``<app>.outcomes``)."""
    return Topic(
        names.outcomes(app_name),
        Outcome,
        key="entity",
        time="at",
        encoding="json",
        contract=CONTRACT,
        partitions=partitions,
    )
