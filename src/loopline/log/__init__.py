"""The log: topics of keyed, timestamped records, behind one contract and two backends.

>>> import tempfile
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("profiles", TopicConfig(compact=True))
>>> log.list_topics()
['profiles']
>>> log.close()
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from loopline.log.errors import (
    DeliveryError,
    GroupMemberConflict,
    InvalidLogURL,
    InvalidRecord,
    InvalidTopicConfig,
    LogError,
    LogUnavailable,
    TopicExists,
    TopicNotFound,
    TransactionError,
)
from loopline.log.protocol import Consumer, Log, Producer, Reset
from loopline.log.records import MAX_FUTURE_MS, Headers, Record, TopicPartition, timestamp_problem
from loopline.log.topics import PartitionInfo, TopicConfig, TopicInfo, parse_duration, parse_size

DEFAULT_LOG_URL = "embedded:./.loopline"

__all__ = [
    "DEFAULT_LOG_URL",
    "MAX_FUTURE_MS",
    "Consumer",
    "DeliveryError",
    "GroupMemberConflict",
    "Headers",
    "InvalidLogURL",
    "InvalidRecord",
    "InvalidTopicConfig",
    "Log",
    "LogError",
    "LogUnavailable",
    "PartitionInfo",
    "Producer",
    "Record",
    "Reset",
    "TopicConfig",
    "TopicExists",
    "TopicInfo",
    "TopicNotFound",
    "TopicPartition",
    "TransactionError",
    "default_log_url",
    "open_log",
    "parse_duration",
    "parse_size",
    "timestamp_problem",
]


def default_log_url() -> str:
    """The log URL from ``LOOPLINE_LOG``, else ``embedded:./.loopline``."""
    return os.environ.get("LOOPLINE_LOG") or DEFAULT_LOG_URL


def open_log(url: str | None = None, *, kafka_config: Mapping[str, str] | None = None) -> Log:
    """Open the log named by `url` (default: `default_log_url()`).

    ``embedded:PATH`` opens (creating if needed) a local log directory;
    ``kafka://host:port[,host:port...]`` connects to Apache Kafka, with any
    librdkafka settings in `kafka_config` (SASL, TLS, ...).
    """
    url = url or default_log_url()
    scheme, sep, rest = url.partition(":")
    if sep and scheme == "embedded":
        if kafka_config:
            raise InvalidLogURL("--kafka-config applies to kafka:// logs only, not to " + url)
        from loopline.log.embedded import EmbeddedLog

        return EmbeddedLog(rest or "./.loopline")
    if sep and scheme == "kafka" and "@" in rest:
        # Never echo it: the part before '@' is a user name and perhaps a password.
        raise InvalidLogURL(
            "a kafka:// log URL cannot carry credentials (user@ or user:password@): put "
            "sasl.username and sasl.password in --kafka-config-file instead"
        )
    if sep and scheme == "kafka" and rest.startswith("//") and rest[2:]:
        from loopline.log.kafka import KafkaLog

        return KafkaLog(rest[2:], config=dict(kafka_config or {}))
    shown = re.sub(r"//[^/?#]*@", "//***@", url)  # never echo credentials
    raise InvalidLogURL(
        f"unknown log URL {shown!r}: use embedded:PATH (a local directory, the default) "
        "or kafka://host:port[,host:port...]"
    )
