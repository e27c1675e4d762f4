"""Where a partition starts and where its group left it: offsets for `KafkaConsumer`.

Offsets by position or time (earliest, latest, first at or after a timestamp)
are looked up by the log's admin client (`TopicAdmin.offsets`), never on the
consumer's own connections: a consumer keeps a fetch request waiting at the
broker (up to ``fetch.wait.max.ms``), and Kafka answers a connection's requests
in order, so a look-up there would wait for it. Committed offsets come from the
group coordinator, which has a connection of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from loopline.log.kafka.deadline import Stuck, within
from loopline.log.records import TopicPartition

if TYPE_CHECKING:
    from loopline.log.kafka.admin import TopicAdmin

EARLIEST = -2  # Kafka's ListOffsets reads the timestamps -2 and -1 as earliest and latest
LATEST = -1
OFFSET_UNSET = -1001  # librdkafka's OFFSET_INVALID: let the group's offset or the reset decide


def committed_offsets(
    consumer: Consumer,
    partitions: Iterable[TopicPartition],
    timeout: float,
    stuck: Stuck | None,
) -> dict[TopicPartition, int | None]:
    """The group's committed offset per partition (None where nothing was committed).

    librdkafka's look-up can wait past the timeout it is given (seen for minutes
    after a broker came back from an outage), so with `stuck` it runs under
    loopline's own deadline too, a second longer; a look-up still waiting then
    is in `stuck` and raises `TimeoutError`. Without `stuck` it runs on the
    calling thread: inside a rebalance callback librdkafka answers it only
    there (from another thread it waits until the callback returns).
    """
    parts = [KafkaPartition(tp[0], tp[1]) for tp in partitions]
    if not parts:
        return {}
    result: dict[TopicPartition, int | None] = {}
    found = (
        consumer.committed(parts, timeout)
        if stuck is None
        else within(timeout + 1, consumer.committed, parts, timeout, stuck=stuck)
    )
    for part in found:
        if part.error is not None:
            raise KafkaException(part.error)
        offset = part.offset if part.offset >= 0 else None
        result[TopicPartition(part.topic, part.partition)] = offset
    return result


def start_offsets(
    consumer: Consumer,
    admin: TopicAdmin,
    partitions: list[TopicPartition],
    reset: Literal["earliest", "latest"],
    *,
    grouped: bool,
    read_committed: bool,
    timeout: float,
    stuck: Stuck | None,
) -> dict[TopicPartition, int]:
    """Where reading starts: the group's committed offset (if `grouped`), else the `reset` end."""
    starts: dict[TopicPartition, int | None] = (
        committed_offsets(consumer, partitions, timeout, stuck)
        if grouped
        else dict.fromkeys(partitions)
    )
    unset = [tp for tp, offset in starts.items() if offset is None]
    if unset:
        when = EARLIEST if reset == "earliest" else LATEST
        starts.update(admin.offsets(unset, when, read_committed=read_committed))
    return {tp: offset or 0 for tp, offset in starts.items()}


def held_by_transaction(action: str, group: str, held: Iterable[TopicPartition], url: str) -> str:
    """What to say when a committed-offsets look-up failed because a transaction holds them.

    >>> print(held_by_transaction("find where to start reading", "g", [("clicks", 0)],
    ...                           "kafka://127.0.0.1:9092"))  # doctest: +ELLIPSIS
    cannot find where to start reading: the committed offsets of group 'g' for clicks[0] are held back by a transaction that has not ended...
    """
    where = ", ".join(f"{tp[0]}[{tp[1]}]" for tp in held)
    servers = url.removeprefix("kafka://")
    return (
        f"cannot {action}: the committed offsets of group {group!r} for {where} are held back "
        "by a transaction that has not ended (the group's coordinator answers a plain look-up "
        "of them, not the stable one a read_committed consumer makes). Kafka hands them out once it commits or aborts "
        "(at the latest its producer's transaction.timeout.ms after it began); starting from "
        "anywhere else could process records twice, so this consumer does not start. A "
        "transaction that a broker stopping in its middle left open (a hanging transaction) "
        "never ends by itself: find it with Kafka's `kafka-transactions.sh --bootstrap-server "
        f"{servers} find-hanging --broker-id <id>` and end it with its `abort` command"
    )
