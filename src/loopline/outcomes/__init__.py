"""Outcomes: what happened after a decision, joined to it into labelled examples."""

from loopline.outcomes.declarations import Outcomes
from loopline.outcomes.labelled import labelled_topic
from loopline.outcomes.outcome import Outcome, outcomes_topic

__all__ = ["Outcome", "Outcomes", "labelled_topic", "outcomes_topic"]
