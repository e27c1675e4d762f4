"""How a Kafka consumer comes to own its partitions, and keeps track as a group rebalances.

A consumer without a group is assigned every partition of its topics at once. A
consumer in a group subscribes and polls until the group hands it its share (the
first assignment callback, possibly of no partitions when the group has more
members than partitions); records fetched meanwhile are held and returned by the
first `poll`. Either way every partition is assigned with an explicit start
offset (the group's committed offset, else the reset end, each looked up in one
request), so `position` is exact, and `seek` works, before the first `poll`.

Groups rebalance with Kafka's cooperative-sticky protocol (librdkafka's
``cooperative-sticky`` assignor): a member that joins gets its first, possibly
empty, assignment without the other members first giving up all of theirs, so it
does not wait for them to poll; and a rebalance moves only the partitions that
change owner. (With an eager assignor such as ``range``, a second member created
in the same thread as a first that does not poll would wait for it in vain.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from loopline.log.errors import LogError, LogUnavailable
from loopline.log.kafka.config import logger
from loopline.log.kafka.errors import reason, translate
from loopline.log.kafka.offsets import OFFSET_UNSET
from loopline.log.kafka.progress import Progress
from loopline.log.records import Record, TopicPartition


class StartOffsets(Protocol):
    """Where reading each partition starts (`KafkaConsumer._start_offsets`); `in_callback`:
    asked inside a rebalance callback, where librdkafka answers only on the calling thread."""

    def __call__(
        self, partitions: list[TopicPartition], *, in_callback: bool = False
    ) -> Mapping[TopicPartition, int]: ...


_JOIN_POLL = 0.1


class Membership:
    """Assigns a consumer its partitions and follows the group's rebalances."""

    def __init__(
        self,
        consumer: Consumer,
        progress: Progress,
        start_offsets: StartOffsets,
        *,
        group: str | None,
        topics: Sequence[str],
        incremental: bool,
        url: str,
        user_config: Mapping[str, Any],
        timeout: float,
    ):
        self._consumer = consumer
        self._progress = progress
        self._start_offsets = start_offsets
        self.group = group
        self.topics = list(topics)
        self.incremental = incremental
        self.url = url
        self._user_config = user_config
        self._timeout = timeout
        self.joined = False
        # An error inside a rebalance callback, raised by the next poll (callbacks must not raise).
        self.error: LogError | None = None

    def assign_all(self, partitions: Mapping[str, int]) -> None:
        """Without a group: take every partition of the topics (`partitions`: count per topic)."""
        tps = [TopicPartition(t, p) for t in self.topics for p in range(partitions[t])]
        starts = self._start_offsets(tps)
        try:
            self._consumer.incremental_assign([KafkaPartition(t, p, starts[t, p]) for t, p in tps])
        except KafkaException as exc:
            action = f"assign the partitions of {self.topics}"
            raise translate(exc, action, self.url, self._user_config) from None
        self._progress.assign(starts)
        self.joined = True

    def join(self, records: Callable[[list[Message]], list[Record]]) -> None:
        """In a group: subscribe, and poll until the group assigns this member its partitions.

        `records` turns what those polls fetch into records, which are held for `poll`.
        """
        self._consumer.subscribe(
            self.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        deadline = time.monotonic() + self._timeout
        while not self.joined:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LogUnavailable(
                    f"consumer of group {self.group!r} got no partitions of {self.topics} "
                    f"from {self.url} within {self._timeout:g}s: the group coordinator did not "
                    "answer, or members of the group did not take part in the rebalance; "
                    "is the broker reachable?"
                )
            messages = self._consumer.consume(500, min(_JOIN_POLL, left))
            if messages:
                self._progress.held.extend(records(messages))
            self.raise_error()

    def _on_assign(self, consumer: Consumer, parts: list[KafkaPartition]) -> None:
        # Runs inside consume(). It must not raise: the group would wait for this member.
        tps = [TopicPartition(p.topic, p.partition) for p in parts]
        starts: Mapping[TopicPartition, int] = {}
        try:
            starts = self._start_offsets(tps, in_callback=True)
        except (LogError, KafkaException) as exc:
            why = reason(exc, self._user_config)
            logger.warning("group %r: %s; librdkafka will find the start offsets", self.group, why)
        assign = [KafkaPartition(t, p, starts.get((t, p), OFFSET_UNSET)) for t, p in tps]  # type: ignore[call-overload]
        try:
            if self.incremental:
                consumer.incremental_assign(assign)
            else:
                consumer.assign(assign)
        except KafkaException as exc:
            action = f"take the partitions of group {self.group!r}"
            self.error = translate(exc, action, self.url, self._user_config)
        self._progress.assign({tp: starts.get(tp) for tp in tps})
        self.joined = True

    def _on_revoke(self, consumer: Consumer, parts: list[KafkaPartition]) -> None:
        gone = {TopicPartition(p.topic, p.partition) for p in parts}
        if not self.incremental:
            gone.update(self._progress.positions)
        self._progress.revoke(gone)

    def raise_error(self) -> None:
        """Raise the error a rebalance callback met, if any."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error
