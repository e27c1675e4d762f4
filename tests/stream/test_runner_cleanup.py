"""A runner, or a stage, that cannot be made releases what it made: its consumer leaves the group.

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

from loopline.app import App
from loopline.experiments.watcher import ExperimentWatcher
from loopline.log import LogUnavailable, TopicConfig, open_log
from loopline.log.kafka import KafkaLog
from loopline.stream.runner import Runner
from stream.test_runner_offsets import Upper
from support import KAFKA_CONFIG, unique


class NoProducer:
    """A real log whose producers (all, or only the transactional ones) cannot start, as
    while a transaction coordinator loads; it keeps every client it made, and which were
    closed."""

    def __init__(self, log: Any, *, transactional_only: bool = False) -> None:
        self._log, self.transactional_only = log, transactional_only
        self.consumers: list[Any] = []
        self.producers: list[Any] = []
        self.closed: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def _kept(self, client: Any, made: list[Any]) -> Any:
        made.append(client)
        close = client.close

        def closing() -> None:
            self.closed.add(id(client))
            close()

        client.close = closing
        return client

    def open_clients(self) -> list[Any]:
        return [c for c in self.consumers + self.producers if id(c) not in self.closed]

    def consumer(self, *args: Any, **kwargs: Any) -> Any:
        return self._kept(self._log.consumer(*args, **kwargs), self.consumers)

    def producer(self, **kwargs: Any) -> Any:
        if kwargs.get("transactional_id") or not self.transactional_only:
            raise LogUnavailable("the transaction coordinator is loading (injected by the test)")
        return self._kept(self._log.producer(**kwargs), self.producers)


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


@pytest.mark.parametrize("refused", ["every producer", "transactional producers"])
def test_an_experiment_watcher_that_cannot_start_closes_what_it_made(log, refused) -> None:
    # Its experiment registry (a table's consumer and a producer) comes first, then its
    # runner; a supervisor makes a new watcher after each failure, for as long as the log
    # is away, and each failed one left its clients to the garbage collector.
    failing = NoProducer(log, transactional_only=refused == "transactional producers")
    with pytest.raises(LogUnavailable, match="injected"):
        ExperimentWatcher(failing, App(unique("shop")), interval=0)
    assert failing.consumers  # it had made clients before the failure
    assert failing.open_clients() == []
