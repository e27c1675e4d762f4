"""What the experiment watcher reads and keeps, made ready: its topics.

The watcher reads ``<app>.labelled`` (the outcomes of each arm) and
``<app>.decisions`` (the decisions each arm served, with their latency). Its
state has one unit per input partition, each backed by its own partition of
``<app>.experiments.changelog``: the labelled partitions first, then the
decisions' (so the changelog has as many partitions as both inputs
together, and no two members ever write one changelog partition).
`ensure_topics` creates what is missing (a missing input gets as many
partitions as the other; the decisions topic is bound to its contract when a
`LogRegistry` is given, as the outcome joiner does) and says how many
partitions each input has.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("shop.labelled", TopicConfig(partitions=3))
>>> ensure_topics(log, App("shop"), None)
(3, 3)
>>> len(log.describe_topic("shop.experiments.changelog").partitions)
6
>>> log.close()
"""

from __future__ import annotations

import contextlib

from loopline.app import App, AppError
from loopline.contracts import LogRegistry
from loopline.contracts.registry import SchemaRegistry
from loopline.log import Log, LogError, TopicConfig, TopicExists
from loopline.serving.decisions import decisions_topic
from loopline.stream import names

__all__ = ["ensure_topics"]


def ensure_topics(log: Log, app: App, contracts: SchemaRegistry | None) -> tuple[int, int]:
    """Create what the watcher of `app` reads and keeps; the partitions of its two inputs."""
    labelled, decisions = names.labelled(app.name), names.decisions(app.name)
    changelog = names.experiments_changelog(app.name)
    counts: dict[str, int | None] = {}
    for topic in (labelled, decisions, changelog):
        try:
            counts[topic] = len(log.describe_topic(topic).partitions)
        except LogError:
            counts[topic] = None
    known = [n for t, n in counts.items() if n is not None and t != changelog]
    default = known[0] if known else 1
    for topic in (labelled, decisions):
        if counts[topic] is not None:
            continue
        counts[topic] = default
        if topic == decisions and isinstance(contracts, LogRegistry):
            decisions_topic(app.name, partitions=default).create(log, contracts)
        else:  # labelled examples are plain JSON, as the joiner creates them
            with contextlib.suppress(TopicExists):
                log.create_topic(topic, TopicConfig(partitions=default))
    inputs = (counts[labelled] or 1, counts[decisions] or 1)
    if counts[changelog] is None:
        with contextlib.suppress(TopicExists):
            log.create_topic(changelog, TopicConfig(partitions=sum(inputs), compact=True))
    elif counts[changelog] != sum(inputs):
        raise AppError(
            f"{changelog} has {counts[changelog]} partitions, but the watcher keeps one per "
            f"input partition: {labelled} has {inputs[0]} and {decisions} {inputs[1]}. The "
            "inputs' partitions changed: delete the changelog and the group's offsets "
            f"(group {names.experiments_group(app.name)}) to count again from the start"
        )
    return inputs
