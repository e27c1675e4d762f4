"""librdkafka settings for loopline's Kafka clients, and keeping secrets out of sight.

Every setting the user gives (``open_log(url, kafka_config={...})``: SASL, TLS,
timeouts, tuning) reaches the admin client, every producer and every consumer.
loopline adds its own defaults underneath (the user may override them) and a few
settings on top that its guarantees depend on (the user may not contradict them):
acknowledged means durable (``acks=all``, idempotence), a key lands where the Java
client puts it (``murmur2_random``), and offsets move only when loopline commits.

Secrets never appear in a repr, a log line or an error message:

>>> redacted({"sasl.username": "app", "sasl.password": "hunter2"})
{'sasl.username': 'app', 'sasl.password': '[redacted]'}
>>> scrub("login with hunter2 failed", {"sasl.password": "hunter2"})
'login with [redacted] failed'
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from loopline.log.errors import LogError

REDACTED = "[redacted]"

# Any key containing one of these holds (or points into) a credential.
SECRET_MARKERS = (
    "password",
    "secret",
    "token",
    "sasl.oauthbearer",
    "ssl.key",
    "keystore",
    "jaas",
    "credential",
    "private",
    "user.info",
    "api.key",
    "apikey",
)

logger = logging.getLogger("loopline.log.kafka")


class RepeatFilter(logging.Filter):
    """Let a librdkafka log line through once per `interval` seconds.

    librdkafka reconnects to an unreachable broker every few hundred
    milliseconds and logs each failure; one line per half minute says as much.
    Lines count as repeats when they differ only in numbers (timings, counters).
    """

    def __init__(self, interval: float = 30.0):
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\d+", "#", record.getMessage())
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


# librdkafka's own log lines go to Python logging instead of stderr.
LIBRDKAFKA_LOGGER = logging.getLogger("loopline.log.kafka.librdkafka")
LIBRDKAFKA_LOGGER.addFilter(RepeatFilter())

# Defaults for throughput; any of them may be overridden by the user's config.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "batch.num.messages": 100_000,
    "batch.size": 1_000_000,
    "compression.type": "none",
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    # Cooperative rebalancing: a member joining or leaving moves only the
    # partitions that change owner, and a new member's join completes without
    # the existing members having to poll first (see consumer.py).
    "partition.assignment.strategy": "cooperative-sticky",
    # librdkafka's 1 MB per partition caps a fetch at ~200k small records/s.
    "max.partition.fetch.bytes": 10_485_760,
    # librdkafka stops fetching a partition while 100,000 of its records wait in the queue,
    # and keeps at most 64 MB queued: reading a backlog then waits on the broker's round
    # trips. With these, a raw consume() of 1,000,000 records of 300 bytes (4 partitions)
    # took 1.4-1.7 s instead of 6.3-7.4 s (decision 0035); the queue holds 256 MB at most.
    "queued.min.messages": 1_000_000,
    "queued.max.messages.kbytes": 262_144,
}

# Settings loopline's guarantees rest on: the user's config may repeat them, not change them.
PRODUCER_REQUIRED: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    # Successful deliveries are counted, not reported one by one (see producer.py).
    "delivery.report.only.error": True,
}

CONSUMER_REQUIRED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
}

COMMON_REQUIRED: dict[str, Any] = {
    # Looking a missing topic up must never create it.
    "allow.auto.create.topics": False,
}

# Set through loopline's API, never through the config.
_API_KEYS = {
    "bootstrap.servers": "the log URL (kafka://host:port,...)",
    "metadata.broker.list": "the log URL (kafka://host:port,...)",
    "transactional.id": "log.producer(transactional_id=...)",
    "group.id": "log.consumer(group, ...)",
    "auto.offset.reset": "log.consumer(..., reset=...)",
    "isolation.level": "log.consumer(..., read_committed=...)",
}

_SAME_VALUES = {"acks": {"all", "-1"}}


def is_secret(key: str) -> bool:
    """Whether the setting `key` holds a credential."""
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def redacted(config: Mapping[str, Any]) -> dict[str, str]:
    """`config` with every secret value replaced by ``[redacted]``, safe to print."""
    return {key: REDACTED if is_secret(key) else str(value) for key, value in config.items()}


def scrub(text: str, config: Mapping[str, Any]) -> str:
    """`text` with every secret value of `config` replaced by ``[redacted]``."""
    for key, value in config.items():
        if is_secret(key) and isinstance(value, str) and value:
            text = text.replace(value, REDACTED)
    return text


def _same(key: str, given: Any, required: Any) -> bool:
    g, r = str(given).strip().lower(), str(required).lower()
    return g == r or g in _SAME_VALUES.get(key, ())


def check_user_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the user's librdkafka settings, refusing the ones loopline must control."""
    checked: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise LogError(f"Kafka setting names are strings, got {key!r}")
        if key in _API_KEYS:
            raise LogError(
                f"do not set {key!r} in the Kafka config: loopline sets it from {_API_KEYS[key]}"
            )
        for required in (PRODUCER_REQUIRED, CONSUMER_REQUIRED, COMMON_REQUIRED):
            if key in required and not _same(key, value, required[key]):
                shown = REDACTED if is_secret(key) else repr(value)
                raise LogError(
                    f"Kafka setting {key}={shown} would break a guarantee of the log; "
                    f"loopline needs {key}={str(required[key]).lower()}: remove it from the config"
                )
        checked[key] = value
    return checked


def client_config(bootstrap: str, user: Mapping[str, Any]) -> dict[str, Any]:
    """Settings every client gets: the brokers, loopline's logging and the user's config."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": "loopline",
        "logger": LIBRDKAFKA_LOGGER,
        **user,
        **COMMON_REQUIRED,
    }


def producer_config(
    bootstrap: str, user: Mapping[str, Any], transactional_id: str | None
) -> dict[str, Any]:
    """Settings of a producer (transactional when `transactional_id` is given)."""
    config = {**PRODUCER_DEFAULTS, **client_config(bootstrap, user), **PRODUCER_REQUIRED}
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    return config


def consumer_config(
    bootstrap: str, user: Mapping[str, Any], group_id: str, reset: str, read_committed: bool
) -> dict[str, Any]:
    """Settings of a consumer in (librdkafka's) group `group_id`."""
    config = {**CONSUMER_DEFAULTS, **client_config(bootstrap, user), **CONSUMER_REQUIRED}
    if str(config.get("group.protocol", "classic")).lower() == "consumer":
        # KIP-848 groups assign on the broker; the client-side strategy is refused there.
        config.pop("partition.assignment.strategy", None)
    config["group.id"] = group_id
    config["auto.offset.reset"] = reset
    config["isolation.level"] = "read_committed" if read_committed else "read_uncommitted"
    return config


def incremental_rebalancing(config: Mapping[str, Any]) -> bool:
    """Whether the consumer made from `config` rebalances incrementally (cooperative)."""
    if str(config.get("group.protocol", "classic")).lower() == "consumer":
        return True
    return "cooperative" in str(config.get("partition.assignment.strategy", "")).lower()
