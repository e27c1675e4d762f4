"""Reading partitions of a topic over fixed offset ranges.

The shared reader behind every "read this topic up to here" in loopline:
restoring a task's state from its changelog, reading a table to its end, and
(pinned ranges with digests) datasets and labelled examples.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("clicks")
>>> producer = log.producer()
>>> for i in range(3):
...     producer.send("clicks", b"%d" % i)
>>> producer.flush()
3
>>> [r.value for _, r in read_partitions(log, "clicks", {TopicPartition("clicks", 0)}, {0: 2})]
[b'0', b'1']
>>> log.close()
"""

from __future__ import annotations

import time

from loopline.log import Log, LogError, Record, TopicPartition

__all__ = ["read_partitions"]


def read_partitions(
    log: Log, topic: str, partitions: set[TopicPartition], ends: dict[int, int]
) -> list[tuple[TopicPartition, Record]]:
    """Every committed record of `partitions` of `topic` before the `ends` offsets (by partition)."""
    consumer = log.consumer(None, [topic], reset="earliest")
    out: list[tuple[TopicPartition, Record]] = []
    try:
        others = [tp for tp in consumer.assignment() if tp not in partitions]
        if others:
            consumer.pause(others)
        consumer.seek_to_beginning(list(partitions))
        left = {tp for tp in partitions if consumer.position(tp) < ends[tp.partition]}
        deadline = time.monotonic() + 120
        while left:
            for record in consumer.poll(10_000, timeout=0.5):
                if record.offset < ends[record.partition]:
                    out.append((TopicPartition(record.topic, record.partition), record))
            left = {tp for tp in left if consumer.position(tp) < ends[tp.partition]}
            if left and time.monotonic() > deadline:
                raise LogError(
                    f"could not read {topic} to its end in 120 s (an open transaction of a "
                    "crashed writer?): try again once the transaction times out"
                )
    finally:
        consumer.close()
    return out
