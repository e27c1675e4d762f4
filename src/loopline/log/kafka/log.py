"""`KafkaLog`: the log contract on Apache Kafka, through librdkafka (confluent-kafka).

loopline's topics on Kafka are ordinary Kafka topics: any Kafka client reads
what loopline writes and the other way round, and a key lands in the partition
the Java client would choose.

>>> log = KafkaLog("127.0.0.1:9092", {"sasl.password": "hunter2"})  # doctest: +SKIP
>>> log  # doctest: +SKIP
KafkaLog('kafka://127.0.0.1:9092', config={'sasl.password': '[redacted]'})
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from loopline.log.errors import LogError
from loopline.log.kafka.admin import TopicAdmin
from loopline.log.kafka.config import (
    check_user_config,
    client_config,
    consumer_config,
    producer_config,
    redacted,
)
from loopline.log.kafka.consumer import KafkaConsumer
from loopline.log.kafka.producer import KafkaProducer
from loopline.log.protocol import Reset
from loopline.log.records import TopicPartition
from loopline.log.topics import TopicConfig, TopicInfo

DEFAULT_TIMEOUT = 30.0


CONNECT_TIMEOUT = 10.0


class KafkaLog:
    """A Kafka cluster as a loopline log; see `loopline.log.Log`.

    `bootstrap` is ``host:port[,host:port...]``; `config` holds librdkafka
    settings (SASL, TLS, tuning) given to every client this log makes; secrets
    in it never appear in a repr or an error. `timeout` bounds every call that
    waits for the cluster (admin operations, joining a group, offset look-ups and
    commits, sending a transaction's offsets).
    Opening checks that the cluster answers, and raises `LogUnavailable` if not.

    Usually made by ``open_log("kafka://host:port", kafka_config={...})``.
    """

    def __init__(
        self,
        bootstrap: str,
        config: Mapping[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        if not bootstrap or not bootstrap.strip():
            raise LogError("a Kafka log needs brokers: kafka://host:port[,host:port...]")
        self.bootstrap = bootstrap
        self.url = "kafka://" + bootstrap
        self.local = False
        self.timeout = timeout
        self._config = check_user_config(config or {})
        self._admin: TopicAdmin | None = TopicAdmin(
            client_config(bootstrap, self._config), self.url, self._config, timeout
        )
        # Fail now, with a clear error, if the cluster does not answer. A reachable cluster
        # answers within seconds, so a mistyped address should not cost the full timeout.
        self._admin.metadata(timeout=min(timeout, CONNECT_TIMEOUT))

    def __repr__(self) -> str:
        return f"KafkaLog({self.url!r}, config={redacted(self._config)!r})"

    @property
    def _topics(self) -> TopicAdmin:
        if self._admin is None:
            raise LogError(f"{self!r} is closed: open it again with open_log({self.url!r})")
        return self._admin

    def create_topic(self, name: str, config: TopicConfig | None = None) -> None:
        """Create a topic; raises `TopicExists` if it already exists."""
        self._topics.create(name, config or TopicConfig())

    def describe_topic(self, name: str) -> TopicInfo:
        """Settings and per-partition offsets of a topic; raises `TopicNotFound`."""
        return self._topics.describe(name)

    def list_topics(self) -> list[str]:
        """Names of all topics, sorted (without Kafka's internal ``__`` topics)."""
        return self._topics.names()

    def delete_topic(self, name: str) -> None:
        """Delete a topic and its records; raises `TopicNotFound`."""
        self._topics.delete(name)

    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        """Every offset `group` committed, read without joining it (an admin read)."""
        return self._topics.group_offsets(group)

    def producer(self, *, transactional_id: str | None = None) -> KafkaProducer:
        """A producer; with `transactional_id`, one that can write transactions."""
        self._topics  # noqa: B018 - raises if closed
        return KafkaProducer(
            producer_config(self.bootstrap, self._config, transactional_id),
            url=self.url,
            user_config=self._config,
            timeout=self.timeout,
            transactional_id=transactional_id,
        )

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        reset: Reset = "latest",
        read_committed: bool = True,
    ) -> KafkaConsumer:
        """A consumer of `topics` in `group` (None: no group, reads every partition, no commits).

        On return the consumer owns its partitions: `assignment`, `seek` and
        `position` work before the first `poll`.
        """
        if reset not in ("earliest", "latest"):
            raise LogError(f"reset must be 'earliest' or 'latest', got {reset!r}")
        if isinstance(topics, str):
            topics = [topics]
        if not topics:
            raise LogError("a consumer needs at least one topic")
        if group is not None and not group:
            raise LogError("a consumer group needs a name (or None for no group)")
        partitions = {topic: self._topics.partitions(topic) for topic in topics}
        # Without a group, librdkafka still wants a group.id; this one is never joined or committed.
        group_id = group if group is not None else f"loopline-no-group-{uuid.uuid4().hex}"
        return KafkaConsumer(
            consumer_config(self.bootstrap, self._config, group_id, reset, read_committed),
            group=group,
            topics=list(dict.fromkeys(topics)),
            partitions=partitions,
            reset=reset,
            read_committed=read_committed,
            admin=self._topics,
            user_config=self._config,
            timeout=self.timeout,
        )

    def close(self) -> None:
        """Release the admin client (producers and consumers are closed by their owners)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
