"""Seeking: to an offset, the beginning, the end and a timestamp."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.log import TopicConfig, TopicPartition
from support import consume_all, examples, unique


def test_seek_to_offset_beginning_and_end(log, new_topic):
    topic = new_topic()
    producer = log.producer()
    for i in range(10):
        producer.send(topic, b"%d" % i)
    producer.flush()
    consumer = log.consumer(unique(), [topic], reset="latest")
    tp = TopicPartition(topic, 0)
    consumer.seek(tp, 7)
    assert consumer.position(tp) == 7
    assert [r.value for r in consume_all(consumer, 3)] == [b"7", b"8", b"9"]
    consumer.seek_to_beginning()
    assert consumer.position(tp) == 0
    assert [r.offset for r in consume_all(consumer, 10)] == list(range(10))
    consumer.seek(tp, 2)
    consumer.seek_to_end([tp])
    assert consumer.position(tp) == 10
    assert consumer.poll(timeout=0.5) == []
    consumer.close()


def test_seek_to_time_finds_first_record_at_or_after(log, backend):
    @settings(
        max_examples=examples(backend, 40, 6),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        stamps=st.lists(st.integers(1_600_000_000_000, 1_600_000_100_000), min_size=1, max_size=40),
        target=st.integers(1_599_999_990_000, 1_600_000_110_000),
    )
    def check(stamps, target):
        topic = unique("time")
        log.create_topic(topic, TopicConfig())
        producer = log.producer()
        for i, ts in enumerate(stamps):
            producer.send(topic, b"%d" % i, timestamp=ts)
        producer.flush()
        producer.close()
        consumer = log.consumer(None, [topic], reset="earliest")
        tp = TopicPartition(topic, 0)
        consumer.seek_to_time(target)
        expected = next((i for i, ts in enumerate(stamps) if ts >= target), len(stamps))
        assert consumer.position(tp) == expected
        got = consume_all(consumer, len(stamps) - expected, timeout=10)
        assert [r.offset for r in got] == list(range(expected, len(stamps)))
        consumer.close()

    check()
