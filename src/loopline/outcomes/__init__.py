"""Outcomes: what happened after a decision, joined to it into labelled examples."""

from loopline.outcomes.declarations import Outcomes
from loopline.outcomes.labelled import LabelledExample, labelled_examples_topic, labelled_topic
from loopline.outcomes.outcome import Outcome, outcomes_topic

__all__ = [
    "LabelledExample",
    "Outcome",
    "Outcomes",
    "labelled_examples_topic",
    "labelled_topic",
    "outcomes_topic",
]
