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
from pathlib import Path

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
"""The log used when neither ``--log`` nor ``$LOOPLINE_LOG`` names one."""

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
    "log_missing",
    "open_log",
    "parse_duration",
    "parse_size",
    "timestamp_problem",
]


def default_log_url() -> str:
    """The log URL from ``LOOPLINE_LOG``, else ``embedded:./.loopline``."""
    return os.environ.get("LOOPLINE_LOG") or DEFAULT_LOG_URL


def log_missing(url: str) -> str | None:
    """Where an embedded log `url` would be if nothing was ever written to it, else None.

    Opening an embedded log creates it; a command that only reads asks this
    first, so that a mistyped path is an error instead of a new, empty log.
    A Kafka log is never missing by this test (its cluster says what it holds).

    >>> log_missing("embedded:/nonexistent/shop").endswith("shop")
    True
    >>> log_missing("kafka://localhost:9092") is None
    True
    """
    scheme, sep, rest = url.partition(":")
    if not sep or scheme != "embedded":
        return None
    from loopline.log.embedded.store import DB_FILE

    folder = Path(rest or "./.loopline").resolve()
    return None if (folder / DB_FILE).exists() else str(folder)


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
