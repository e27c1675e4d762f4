"""Topics on Kafka: create, describe, list and delete through librdkafka's admin client.

A loopline `TopicConfig` maps onto Kafka topic configs one to one:
``cleanup.policy`` (``compact`` or ``delete``), ``retention.ms`` and
``retention.bytes`` (``-1`` for forever), plus `TopicConfig.extra` passed through.
`describe_topic` reads them back, so a config round-trips. Creation and deletion
return only once the cluster's metadata shows the change, so a topic can be used
(or re-created) right away.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import (
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicCollection,
)
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import (
    AdminClient,
    ClusterMetadata,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourceType,
    TopicMetadata,
)

from loopline.log.errors import InvalidTopicConfig, LogError, TopicNotFound
from loopline.log.kafka.errors import MISSING_TOPIC, ErrorTrail, kafka_error, translate
from loopline.log.kafka.group_offsets import GroupOffsets
from loopline.log.kafka.offsets import EARLIEST, LATEST
from loopline.log.records import TopicPartition
from loopline.log.topics import PartitionInfo, TopicConfig, TopicInfo

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REPLICA_NOT_AVAILABLE,
        # The broker's metadata is a step behind the client's (seen right after creating
        # a topic, in CI): ask again.
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.FENCED_LEADER_EPOCH,
    }
)
_MAPPED = ("cleanup.policy", "retention.ms", "retention.bytes")
MAX_REPLICATION_FACTOR = 3


def check_topic_name(name: str) -> None:
    """Raise `InvalidTopicConfig` unless `name` is a legal Kafka topic name."""
    if not isinstance(name, str) or not _TOPIC_NAME.match(name) or name in (".", ".."):
        raise InvalidTopicConfig(
            f"invalid topic name {name!r}: use letters, digits, '.', '_' and '-', "
            "at most 249 characters"
        )


def topic_settings(config: TopicConfig) -> dict[str, str]:
    """The Kafka topic configs that create a topic as `config` describes."""
    settings = {
        "cleanup.policy": config.cleanup_policy,
        "retention.ms": str(-1 if config.retention_ms is None else config.retention_ms),
        "retention.bytes": str(-1 if config.retention_bytes is None else config.retention_bytes),
    }
    settings.update({str(k): str(v) for k, v in config.extra.items()})
    return settings


def _ready(meta: TopicMetadata | None, partitions: int) -> bool:
    return (
        meta is not None
        and meta.error is None
        and len(meta.partitions) == partitions
        and all(p.leader >= 0 for p in meta.partitions.values())
    )


def _gone(meta: TopicMetadata | None) -> bool:
    return meta is None or (meta.error is not None and meta.error.code() in MISSING_TOPIC)


def _limit(value: str | None) -> int | None:
    if value is None:
        return None
    number = int(value)
    return None if number < 0 else number


class TopicAdmin:
    """Topic administration of one Kafka cluster, for `KafkaLog`."""

    def __init__(
        self, config: Mapping[str, Any], url: str, user_config: Mapping[str, Any], timeout: float
    ):
        self.url = url
        self._user_config = user_config
        self._timeout = timeout
        self._trail = ErrorTrail()
        self._groups = GroupOffsets({**config, "error_cb": self._trail}, timeout)
        try:
            self._admin = AdminClient({**config, "error_cb": self._trail})
        except KafkaException as exc:
            raise translate(exc, "create a Kafka admin client", url, user_config) from None

    def _fail(
        self, exc: BaseException | KafkaError, action: str, topic: str | None = None
    ) -> LogError:
        self._admin.poll(0)  # serve the client errors that may explain this one
        return translate(exc, action, self.url, self._user_config, topic=topic, trail=self._trail)

    def _wait(self, future: Any, action: str, topic: str | None = None) -> Any:
        try:
            return future.result(timeout=self._timeout + 5)
        except (KafkaException, TimeoutError) as exc:
            raise self._fail(exc, action, topic) from None
        finally:
            self._admin.poll(0)  # serve librdkafka's log lines

    def metadata(self, topic: str | None = None, timeout: float | None = None) -> ClusterMetadata:
        """Cluster metadata (brokers and topics), or of one topic only."""
        what = f"read the metadata of topic {topic!r}" if topic else "read the cluster metadata"
        try:
            return self._admin.list_topics(topic=topic, timeout=timeout or self._timeout)
        except KafkaException as exc:
            raise self._fail(exc, what) from None
        finally:
            self._admin.poll(0)

    def partitions(self, topic: str) -> int:
        """Number of partitions of `topic`; raises `TopicNotFound`."""
        meta = self.metadata(topic).topics.get(topic)
        if meta is None or (meta.error is not None and meta.error.code() in MISSING_TOPIC):
            raise TopicNotFound(topic)
        if meta.error is not None:
            raise self._fail(meta.error, f"read the metadata of topic {topic!r}", topic)
        return len(meta.partitions)

    def create(self, name: str, config: TopicConfig) -> None:
        """Create topic `name`; returns once every partition has a leader."""
        check_topic_name(name)
        brokers = len(self.metadata().brokers)
        new = NewTopic(
            name,
            num_partitions=config.partitions,
            replication_factor=max(1, min(MAX_REPLICATION_FACTOR, brokers)),
            config=topic_settings(config),
        )
        action = f"create topic {name!r}"
        futures = self._admin.create_topics(
            [new], operation_timeout=self._timeout, request_timeout=self._timeout
        )
        self._wait(futures[name], action, name)
        self._await_metadata(name, lambda meta: _ready(meta, config.partitions), action)

    def delete(self, name: str) -> None:
        """Delete topic `name`; returns once the cluster's metadata no longer has it."""
        action = f"delete topic {name!r}"
        futures = self._admin.delete_topics(
            [name], operation_timeout=self._timeout, request_timeout=self._timeout
        )
        self._wait(futures[name], action, name)
        self._await_metadata(name, _gone, action)

    def _await_metadata(
        self, name: str, done: Callable[[TopicMetadata | None], bool], action: str
    ) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            if done(self.metadata(name).topics.get(name)):
                return
            if time.monotonic() > deadline:
                raise self._fail(
                    TimeoutError(f"metadata did not show the change in {self._timeout}s"), action
                )
            time.sleep(0.05)

    def names(self) -> list[str]:
        """Names of all topics, sorted, without Kafka's internal ones (``__consumer_offsets``...)."""
        topics = self.metadata().topics
        return sorted(name for name in topics if not name.startswith("__"))

    def describe(self, name: str) -> TopicInfo:
        """Settings read back from the cluster and offsets per partition of topic `name`."""
        action = f"describe topic {name!r}"
        resource = ConfigResource(ResourceType.TOPIC, name)
        # Both requests at once: the topic's description (partitions, topic id), its configs.
        described = self._admin.describe_topics(
            TopicCollection([name]), request_timeout=self._timeout
        )[name]
        configs = self._admin.describe_configs([resource], request_timeout=self._timeout)
        try:
            description = described.result(timeout=self._timeout + 5)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is not None and error.code() in MISSING_TOPIC:
                raise TopicNotFound(name) from None
            raise self._fail(exc, action, name) from None
        count = len(description.partitions)
        entries = self._wait(configs[resource], action, name)
        values = {key: entry.value for key, entry in entries.items()}
        policy = values.get("cleanup.policy") or "delete"
        extra = {
            key: entry.value
            for key, entry in entries.items()
            if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
            and key not in _MAPPED
            and entry.value is not None
        }
        if policy not in ("compact", "delete"):
            extra["cleanup.policy"] = policy  # e.g. "compact,delete": keep it as Kafka has it
        config = TopicConfig(
            partitions=count,
            compact="compact" in policy,
            retention_ms=_limit(values.get("retention.ms")),
            retention_bytes=_limit(values.get("retention.bytes")),
            extra=extra,
        )
        parts = [TopicPartition(name, p) for p in range(count)]
        starts, ends = self.offsets(parts, EARLIEST), self.offsets(parts, LATEST)
        infos = tuple(PartitionInfo(tp.partition, starts[tp] or 0, ends[tp] or 0) for tp in parts)
        return TopicInfo(name=name, config=config, partitions=infos, id=str(description.topic_id))

    def offsets(
        self, partitions: Iterable[TopicPartition], when: int, *, read_committed: bool = False
    ) -> dict[TopicPartition, int | None]:
        """Per partition the first offset whose timestamp is >= `when` (ms), or `EARLIEST`
        or `LATEST` (for `read_committed`, the last stable offset); None where no
        record is that recent. One request per leader, on the admin client's own
        connections (a consumer's are held by its long-polling fetches)."""
        spec = (
            OffsetSpec.earliest()
            if when == EARLIEST
            else OffsetSpec.latest()
            if when == LATEST
            else OffsetSpec.for_timestamp(when)
        )
        request = {KafkaPartition(tp[0], tp[1]): spec for tp in partitions}
        if not request:
            return {}
        isolation = (
            IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED
        )
        # Right after a topic is created its leaders may still be settling in
        # (NOT_LEADER_FOR_PARTITION): retry until the timeout.
        deadline = time.monotonic() + self._timeout
        while True:
            futures = self._admin.list_offsets(
                request, isolation_level=isolation, request_timeout=self._timeout
            )
            try:
                return {
                    TopicPartition(part.topic, part.partition): (
                        offset if (offset := future.result().offset) >= 0 else None
                    )
                    for part, future in futures.items()
                }
            except KafkaException as exc:
                err = kafka_error(exc)
                settling = err is not None and (err.retriable() or err.code() in _SETTLING)
                topics = sorted({part.topic for part in request})
                if not settling or time.monotonic() > deadline:
                    raise self._fail(
                        exc, f"look up offsets of {topics}", topics[0] if len(topics) == 1 else None
                    ) from None
                time.sleep(0.1)
            finally:
                self._admin.poll(0)

    def group_offsets(self, group: str) -> dict[TopicPartition, int]:
        """Every offset `group` committed (not through the admin API, which can crash the
        process while a broker shuts down: `group_offsets.GroupOffsets`); empty for a group
        that never committed."""
        action = f"read the committed offsets of group {group!r}"
        meta = self.metadata()
        parts = [
            TopicPartition(name, p) for name, topic in meta.topics.items() for p in topic.partitions
        ]
        try:
            found = self._groups.committed(group, parts)
        except (KafkaException, TimeoutError) as exc:
            raise self._fail(exc, action) from None
        return {tp: offset for tp, offset in sorted(found.items()) if offset is not None}

    def held_offsets(
        self, group: str, partitions: Iterable[TopicPartition], timeout: float = 2.0
    ) -> list[TopicPartition]:
        """Of `partitions`, those whose committed offset in `group` an open transaction holds
        back, when a stable look-up of them (a ``read_committed`` consumer's) timed out.

        Kafka answers a stable look-up of such a partition with ``UNSTABLE_OFFSET_COMMIT``
        until the transaction commits or aborts, and librdkafka retries it until its timeout
        and then says only that it timed out. If the group's coordinator answers a plain
        look-up of the same partitions at once, that is why. A diagnosis only: nothing when
        the plain look-up fails too.
        """
        parts = sorted(TopicPartition(tp[0], tp[1]) for tp in partitions)
        try:
            self._groups.committed(group, parts, timeout)
        except (KafkaException, TimeoutError):
            return []
        return parts

    def close(self) -> None:
        """Close the group offsets readers; serve pending log lines."""
        self._groups.close()
        self._admin.poll(0)
