"""The error of a record the online features cannot read, which the processor dead-letters."""

from __future__ import annotations

from typing import Any


class UnreadableRecord(ValueError):
    """A feature-source record without a usable entity id, event time or value (nothing was
    changed): the processor sends it to ``<source>.dlq`` with this message as the reason.

    >>> from loopline.features.aggregations import Sum
    >>> str(UnreadableRecord.unusable("record ev[0]@7", Sum("amount", name="spent"), "5.5"))
    "record ev[0]@7: feature 'spent' (sum of 'amount') reads a number (int or float), not '5.5' (str)"
    """

    @classmethod
    def unusable(cls, record: str, feature: Any, value: Any) -> UnreadableRecord:
        """The error of `record`, whose `value` `feature` (an `Aggregation`) cannot read."""
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:60] + "..." + shown[-12:]
        return cls(
            f"{record}: feature {feature.name!r} ({feature.kind} of {feature.field!r}) reads "
            f"{feature.accepts}, not {shown} ({type(value).__name__})"
        )
