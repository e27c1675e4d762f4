"""A consumer group's committed offsets, read without joining the group: `GroupOffsets`.

Kafka's admin API has a call for this (``ListConsumerGroupOffsets``), but
librdkafka (2.16) crashes the whole process, with a segmentation fault or a
failed assertion, when such an admin request to a group coordinator meets a
broker that is shutting down (decision 0048; librdkafka issue #4605). A broker
restart is routine, and the monitor and the dashboard read groups' offsets all
the time, so loopline never makes that request. It reads them the way a
consumer of the group finds where to start: ``committed()`` of a librdkafka
consumer whose ``group.id`` is the group, which never subscribes (so never
joins), one per group, kept for the next read.

Such a consumer reads ``read_uncommitted``: it answers with the offsets
committed last, leaving out those a transaction still holds back, as the admin
call did; a ``read_committed`` one would wait for the transaction to end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException

from loopline.log.kafka.deadline import Stuck
from loopline.log.kafka.offsets import committed_offsets
from loopline.log.records import TopicPartition


class GroupOffsets:
    """Readers of consumer groups' committed offsets, one plain consumer per group.

    `config` holds the settings every client of the log gets (`client_config`).
    Thread-safe: a reader serves one look-up at a time. A look-up past `timeout`
    raises `TimeoutError` and leaves its reader stuck (the next look-up of that
    group raises at once) until librdkafka answers or gives up.
    """

    def __init__(self, config: Mapping[str, Any], timeout: float) -> None:
        self._config = dict(config)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._readers: dict[str, tuple[Consumer, Stuck, threading.Lock]] = {}

    def committed(
        self, group: str, partitions: Iterable[TopicPartition], timeout: float | None = None
    ) -> dict[TopicPartition, int | None]:
        """`group`'s committed offset of each of `partitions` (None: nothing committed).

        Raises `KafkaException` or `TimeoutError` when the group's coordinator does not
        answer (`TimeoutError` at once while an earlier look-up of `group` still waits).
        """
        reader, stuck, busy = self._reader(group)
        if stuck:
            raise TimeoutError(f"an earlier look-up of group {group!r} is still waiting")
        with busy:
            return committed_offsets(reader, partitions, timeout or self._timeout, stuck)

    def close(self) -> None:
        """Close every reader (one whose look-up still waits: once it ends)."""
        with self._lock:
            readers, self._readers = list(self._readers.values()), {}
        for reader, stuck, _ in readers:
            if stuck:
                stuck.then(reader.close, "closing a group offsets reader")
            else:
                # it holds no partitions and commits nothing: an error loses nothing
                with contextlib.suppress(KafkaException):
                    reader.close()

    def _reader(self, group: str) -> tuple[Consumer, Stuck, threading.Lock]:
        with self._lock:
            found = self._readers.get(group)
            if found is None:
                config = {
                    **self._config,
                    "group.id": group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_uncommitted",
                }
                found = self._readers[group] = (Consumer(config), Stuck(), threading.Lock())
            return found
