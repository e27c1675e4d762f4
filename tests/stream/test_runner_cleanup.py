"""A runner that cannot be made releases what it made: its consumer leaves the group.

Right after a Kafka broker comes back, a transactional producer can fail to
start (its coordinator is still loading) after the runner's consumer joined its
group. Left open, that consumer stays a member: librdkafka keeps it alive with
heartbeats while nothing polls it, so the group's next rebalance waits for it
(up to ``max.poll.interval.ms``, five minutes) and every restarted member's join
times out. The broker-outage stage test found it; here the producer's failure
is injected into a real log.
"""

from __future__ import annotations

from typing import Any

import pytest

from loopline.log import LogUnavailable, TopicConfig, open_log
from loopline.log.kafka import KafkaLog
from loopline.stream.runner import Runner
from stream.test_runner_offsets import Upper
from support import KAFKA_CONFIG, unique


class NoProducer:
    """A real log whose producers cannot start, as while a transaction coordinator loads."""

    def __init__(self, log: Any) -> None:
        self._log, self.consumers = log, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def consumer(self, *args: Any, **kwargs: Any) -> Any:
        consumer = self._log.consumer(*args, **kwargs)
        self.consumers.append(consumer)
        return consumer

    def producer(self, **kwargs: Any) -> Any:
        raise LogUnavailable("the transaction coordinator is loading (injected by the test)")


def test_a_runner_whose_producer_cannot_start_leaves_its_group(log_url, backend) -> None:
    if backend == "kafka":  # a 10 s timeout: on main, the next member's join fails after it
        log: Any = KafkaLog(log_url.removeprefix("kafka://"), KAFKA_CONFIG, timeout=10)
    else:
        log = open_log(log_url)
    source, target, group = unique("words"), unique("loud"), unique("g")
    log.create_topic(source, TopicConfig(partitions=2))
    log.create_topic(target)
    producer = log.producer()
    for i in range(4):
        producer.send(source, b"word", f"k{i}".encode())
    producer.flush()
    producer.close()
    failing = NoProducer(log)
    with pytest.raises(LogUnavailable, match="injected"):
        Runner(failing, Upper(source, target), group=group)
    # the consumer it made is still referenced (as a traceback or a reference cycle keeps
    # it), yet closed: the next member of the group joins at once and reads everything
    assert len(failing.consumers) == 1
    runner = Runner(log, Upper(source, target), group=group)
    try:
        assert runner.run(until_caught_up=True).records == 4
    finally:
        runner.close()
        log.close()
