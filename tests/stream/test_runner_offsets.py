"""A stage that has read everything has committed the end of its input. On Kafka that end
can lie past offsets that hold no record to read: the commit marker of each transaction, and
the records of an aborted one. A read_committed consumer steps over them without returning
anything, so unless the runner commits then, its group shows a lag nothing will ever read."""

from __future__ import annotations

from loopline.log import TopicConfig, TopicPartition
from loopline.stream.runner import Runner
from loopline.stream.task import Context, Task
from support import unique


class Upper(Task):
    name = "upper"

    def __init__(self, source: str, target: str) -> None:
        self.topics, self.target = (source,), target

    def process(self, records: list, context: Context) -> None:
        for r in records:
            context.send(self.target, r.value.upper(), r.key)


def write(producer, topic: str, n: int, *, abort: bool = False) -> None:
    producer.begin_transaction()
    for i in range(n):
        producer.send(topic, b"word", f"k{i}".encode())
    if abort:
        producer.abort_transaction()
    else:
        producer.commit_transaction()


def run_and_check(log, source: str, target: str, group: str, records: int) -> None:
    """Run the stage until caught up: it read `records`, and committed every partition's end."""
    runner = Runner(log, Upper(source, target), group=group)
    try:
        stats = runner.run(until_caught_up=True)
    finally:
        runner.close()
    ends = {
        TopicPartition(source, p.partition): p.end for p in log.describe_topic(source).partitions
    }
    assert stats.records == records
    assert log.committed_offsets(group) == ends


def test_a_caught_up_stage_has_committed_the_end_of_its_input(log) -> None:
    source, target, group = unique("words"), unique("loud"), unique("g")
    log.create_topic(source, TopicConfig(partitions=2))
    log.create_topic(target)
    producer = log.producer(transactional_id=unique("writer"))
    try:
        for _ in range(3):
            write(producer, source, 6)
        run_and_check(log, source, target, group, 18)
        # then only an aborted transaction: nothing to read, yet the end moved
        write(producer, source, 6, abort=True)
        run_and_check(log, source, target, group, 0)
        write(producer, source, 4)
        run_and_check(log, source, target, group, 4)
    finally:
        producer.close()
