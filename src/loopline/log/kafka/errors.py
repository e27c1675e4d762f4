"""How librdkafka's errors become loopline's: one `LogError` subclass per thing a user can do.

An error names the operation, the cluster and librdkafka's reason, with any
secret of the config scrubbed out, and says what to try next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from loopline.log.errors import (
    InvalidTopicConfig,
    LogError,
    LogUnavailable,
    TopicExists,
    TopicNotFound,
    TransactionError,
)
from loopline.log.kafka.config import logger, scrub

UNREACHABLE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
DENIED = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
MISSING_TOPIC = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_ID,
    }
)
BAD_TOPIC_CONFIG = frozenset(
    {
        KafkaError.INVALID_CONFIG,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.TOPIC_EXCEPTION,
    }
)
FENCED = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    }
)


def kafka_error(exc: BaseException | KafkaError) -> KafkaError | None:
    """The `KafkaError` inside `exc` (a `KafkaException`, or the error itself)."""
    if isinstance(exc, KafkaError):
        return exc
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def error_code(exc: BaseException | KafkaError) -> int | None:
    """librdkafka's error code in `exc`, or None if `exc` is not a Kafka error."""
    err = kafka_error(exc)
    return err.code() if err is not None else None


def reason(exc: BaseException | KafkaError, config: Mapping[str, Any]) -> str:
    """librdkafka's description of `exc`, with secrets scrubbed."""
    err = kafka_error(exc)
    text = err.str() if err is not None else str(exc)
    if err is not None and err.name() and err.name() not in text:
        text = f"{text} ({err.name()})"
    return scrub(text, config)


class ErrorTrail:
    """A client's ``error_cb``: remembers the last client-wide error librdkafka reported.

    librdkafka retries broken connections and failed logins by itself and reports
    them only through this callback; an operation that then times out says just
    "transport failure". The trail lets the error name the real cause.
    """

    def __init__(self) -> None:
        self.last: KafkaError | None = None

    def __call__(self, err: KafkaError) -> None:
        self.last = err
        logger.debug("Kafka client error: %s", err)


def translate(
    exc: BaseException | KafkaError,
    action: str,
    url: str,
    config: Mapping[str, Any],
    *,
    topic: str | None = None,
    trail: ErrorTrail | None = None,
) -> LogError:
    """The loopline error for `exc`, raised while doing `action` (e.g. ``"create topic 'x'"``).

    `trail` holds the client's last client-wide error, the likely cause of a time-out.
    """
    err = kafka_error(exc)
    why = reason(exc, config)
    code = err.code() if err is not None else None
    last = trail.last if trail is not None else None
    if last is not None and (code in UNREACHABLE or isinstance(exc, TimeoutError)):
        if last.code() in DENIED:
            err, why, code = last, reason(last, config), last.code()
        else:
            why = f"{why}; last client error: {reason(last, config)}"
    if topic is not None and code in MISSING_TOPIC:
        return TopicNotFound(topic)
    if topic is not None and code == KafkaError.TOPIC_ALREADY_EXISTS:
        return TopicExists(topic)
    if code in BAD_TOPIC_CONFIG:
        return InvalidTopicConfig(f"cannot {action}: Kafka refused the settings: {why}")
    if code in DENIED:
        return LogError(
            f"cannot {action} on {url}: access denied: {why}; check the SASL/TLS settings "
            "and ACLs given in the Kafka config"
        )
    if code in FENCED:
        return TransactionError(
            f"cannot {action}: this producer was fenced by a newer one with the same "
            f"transactional_id ({why}); close it and stop using it"
        )
    if code in UNREACHABLE or isinstance(exc, TimeoutError):
        return LogUnavailable(
            f"cannot {action}: Kafka at {url} did not answer ({why}); is the broker running "
            "and reachable from here? (for a local test broker: scripts/kafka.sh start)"
        )
    return LogError(f"cannot {action} on {url}: {why}")
