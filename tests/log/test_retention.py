"""Retention by time: old records go, the first offset moves on, reading continues."""

from __future__ import annotations

import time

from loopline.log import TopicConfig
from support import unique


def test_retention_by_time_drops_old_records(log):
    topic = unique("short")
    log.create_topic(topic, TopicConfig(retention_ms=1000, extra={"segment.ms": "100"}))
    producer = log.producer()
    old = int(time.time() * 1000) - 60_000
    for i in range(10):
        producer.send(topic, b"old-%d" % i, timestamp=old)
    producer.flush()
    deadline = time.monotonic() + 90
    while True:
        time.sleep(0.5)
        producer.send(topic, b"new")  # rolls the segment on Kafka, triggers retention here
        producer.flush()
        if log.describe_topic(topic).partitions[0].start >= 10:
            break
        assert time.monotonic() < deadline, "retention did not delete expired records"
    consumer = log.consumer(None, [topic], reset="earliest")
    got = consumer.poll(timeout=2.0)
    assert got and all(r.value == b"new" for r in got)
    assert got[0].offset >= 10
    consumer.close()
    producer.close()
