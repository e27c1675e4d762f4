"""What the outcome joiner reads and writes, made ready: its topics and its decoders.

The joiner (`loopline.outcomes.joiner`) reads ``<app>.decisions`` and
``<app>.outcomes`` partition by partition; `ensure_topics` creates them (bound
to their contracts when a `LogRegistry` is given) and the topics the joiner
writes, with as many partitions; `decoder` says how to read a topic: with the
contract it is bound to (JSON or Avro), else as JSON.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.outcomes.declarations import Outcomes
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> ensure_topics(log, App("shop", outcomes=Outcomes(window="1h")), None)
1
>>> sorted(log.list_topics())[:3]
['shop.decisions', 'shop.decisions.dlq', 'shop.labelled']
>>> log.close()
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from loopline.app import App, AppError
from loopline.contracts import LogRegistry
from loopline.contracts.codecs import Codec, JsonCodec
from loopline.contracts.registry import SchemaRegistry
from loopline.contracts.topics import codec_for
from loopline.log import Log, LogError, TopicConfig, TopicExists
from loopline.outcomes.outcome import outcomes_topic
from loopline.serving.decisions import decisions_topic
from loopline.stream import names
from loopline.stream.deadletters import dlq_topic

__all__ = ["decoder", "ensure_topics"]


def decoder(
    registry: SchemaRegistry | None, topic: str, record_type: type
) -> tuple[Callable[[bytes | None], Any], tuple[str, int] | None]:
    """How to read `topic` (its bound contract's codec, else JSON), and the contract."""
    binding = None
    if registry is not None and hasattr(registry, "binding"):
        binding = registry.binding(topic)
    if binding is None:
        codec: Codec = JsonCodec(record_type)
        return codec.decode, None
    version = registry.latest(binding.contract)  # type: ignore[union-attr]
    codec = codec_for(record_type, version, binding.encoding, registry)  # type: ignore[arg-type]
    return codec.decode, (binding.contract, version.version)


def ensure_topics(log: Log, app: App, registry: SchemaRegistry | None) -> int:
    """Create what the joiner of `app` reads and writes; the partitions of its inputs.

    Decisions and outcomes are joined partition by partition, so both get (or
    must already have) the same number of partitions; the labelled, late and
    changelog topics get as many.
    """
    decisions, outcomes = names.decisions(app.name), names.outcomes(app.name)
    counts: dict[str, int | None] = {}
    for topic in (decisions, outcomes):
        try:
            counts[topic] = len(log.describe_topic(topic).partitions)
        except LogError:
            counts[topic] = None
    known = {n for n in counts.values() if n is not None}
    if len(known) > 1:
        raise AppError(
            f"{decisions} has {counts[decisions]} partitions and "
            f"{outcomes} {counts[outcomes]}: decisions and outcomes "
            "are joined partition by partition, so give both the same number"
        )
    partitions = known.pop() if known else 1
    declared = {
        decisions: decisions_topic(app.name, partitions=partitions),
        outcomes: outcomes_topic(app.name, partitions=partitions),
    }
    for topic, n in counts.items():
        if n is not None:
            continue
        if isinstance(registry, LogRegistry):
            declared[topic].create(log, registry)  # and bind its contract
        else:
            with contextlib.suppress(TopicExists):
                log.create_topic(topic, TopicConfig(partitions=partitions))
    for topic, compact in (
        (names.labelled(app.name), False),
        (names.outcomes_late(app.name), False),
        (names.outcomes_changelog(app.name), True),
    ):
        with contextlib.suppress(TopicExists):
            log.create_topic(topic, TopicConfig(partitions=partitions, compact=compact))
    for topic in (decisions, outcomes):
        with contextlib.suppress(TopicExists):
            log.create_topic(dlq_topic(topic))
    return partitions
