"""Fixtures shared by the whole suite: a log of each backend, and fresh topics on it.

Tests that take the `log` fixture run twice: on the embedded log (in a
temporary directory) and on the real Kafka broker that `scripts/test.sh`
starts (`LOOPLINE_KAFKA_BOOTSTRAP`, default 127.0.0.1:9092). When that broker
cannot be reached the Kafka half fails; it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from loopline.log import Log, TopicConfig, open_log

KAFKA_BOOTSTRAP = os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
BACKENDS = ["embedded", "kafka"]


def kafka_url() -> str:
    return f"kafka://{KAFKA_BOOTSTRAP}"


def _check_kafka() -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP, "socket.timeout.ms": 5000})
    try:
        admin.list_topics(timeout=10)
    except Exception as exc:
        pytest.fail(
            f"the Kafka broker at {KAFKA_BOOTSTRAP} is not reachable ({exc}). Start it with "
            "`bash scripts/kafka.sh start`, or run the whole suite with `scripts/test.sh`",
            pytrace=False,
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def log_url(backend: str, tmp_path) -> str:
    if backend == "kafka":
        _check_kafka()
        return kafka_url()
    return f"embedded:{tmp_path / 'log'}"


@pytest.fixture
def log(log_url: str) -> Iterator[Log]:
    handle = open_log(log_url)
    yield handle
    handle.close()


@pytest.fixture
def new_topic(log: Log) -> Callable[..., str]:
    """Create a topic with a unique name (Kafka is shared by all tests) and return the name."""

    def create(partitions: int = 1, *, compact: bool = False, **kwargs) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        log.create_topic(name, TopicConfig(partitions=partitions, compact=compact, **kwargs))
        return name

    return create
