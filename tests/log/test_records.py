"""Records: keys, values, tombstones, timestamps, headers, partitioning and order."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.log import Record, TopicPartition
from loopline.log.partitioner import partition_for
from support import consume_all, examples, unique


def test_round_trip_of_every_field(log, new_topic):
    topic = new_topic()
    producer = log.producer()
    before = int(time.time() * 1000)
    producer.send(topic, b"v1", b"k1", timestamp=1_600_000_000_123, headers=(("trace", b"abc"),))
    producer.send(topic, None, b"k2")  # tombstone
    producer.send(topic, b"v3")  # no key, timestamp set on send
    producer.send(topic, b"", b"", headers=(("a", b""), ("a", b"\x00\xff")))
    assert producer.flush() == 4
    consumer = log.consumer(None, [topic], reset="earliest")
    got = consume_all(consumer, 4)
    assert [(r.key, r.value) for r in got] == [
        (b"k1", b"v1"),
        (b"k2", None),
        (None, b"v3"),
        (b"", b""),
    ]
    assert got[0].timestamp == 1_600_000_000_123
    assert before <= got[2].timestamp <= int(time.time() * 1000) + 1
    assert got[0].headers == (("trace", b"abc"),)
    assert got[1].headers == ()
    assert got[3].headers == (("a", b""), ("a", b"\x00\xff"))
    assert [r.offset for r in got] == [0, 1, 2, 3]
    assert all(isinstance(r, Record) and r.topic == topic and r.partition == 0 for r in got)
    consumer.close()


def test_flush_counts_acknowledged_records_once(log, new_topic):
    topic = new_topic()
    producer = log.producer()
    for i in range(10):
        producer.send(topic, b"%d" % i)
    assert producer.flush() == 10
    assert producer.flush() == 0
    producer.send_batch(topic, [b"a", b"b", b"c"], [b"1", b"2", b"3"])
    assert producer.flush() == 3
    assert log.describe_topic(topic).partitions[0].end == 13


def test_keys_land_in_the_java_clients_partition(log, new_topic):
    topic = new_topic(partitions=7)
    keys = [f"member-{i}".encode() for i in range(300)]
    producer = log.producer()
    for key in keys[:150]:
        producer.send(topic, b"x", key)
    producer.send_batch(topic, [b"y"] * 150, keys[150:])
    assert producer.flush() == 300
    consumer = log.consumer(None, [topic], reset="earliest")
    got = consume_all(consumer, 300)
    assert len(got) == 300
    for record in got:
        assert record.partition == partition_for(record.key, 7)
    consumer.close()


def test_explicit_partition_is_respected(log, new_topic):
    topic = new_topic(partitions=3)
    producer = log.producer()
    producer.send(topic, b"x", b"some-key", partition=2)
    producer.flush()
    assert [p.end for p in log.describe_topic(topic).partitions] == [0, 0, 1]


def _is_subsequence(received, sent) -> bool:
    it = iter(sent)
    return all(item in it for item in received)


records_strategy = st.lists(
    st.tuples(st.sampled_from([b"a", b"b", b"c", b"d", b"e", None]), st.binary(max_size=40)),
    min_size=1,
    max_size=60,
)


def test_order_and_offsets_per_partition(log, backend):
    """Within a partition records come back in the order sent, with offsets 0, 1, 2, ..."""

    @settings(
        max_examples=examples(backend, 40, 6),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(records=records_strategy, partitions=st.integers(1, 4), batch=st.booleans())
    def check(records, partitions, batch):
        from loopline.log import TopicConfig

        topic = unique("order")
        log.create_topic(topic, TopicConfig(partitions=partitions))
        producer = log.producer()
        if batch:
            producer.send_batch(topic, [v for _, v in records], [k for k, _ in records])
        else:
            for key, value in records:
                producer.send(topic, value, key)
        assert producer.flush() == len(records)
        producer.close()
        consumer = log.consumer(None, [topic], reset="earliest")
        got = consume_all(consumer, len(records), max_records=7)
        consumer.close()
        assert len(got) == len(records)
        by_partition: dict[int, list[Record]] = {}
        for record in got:
            by_partition.setdefault(record.partition, []).append(record)
        for recs in by_partition.values():
            assert [r.offset for r in recs] == list(range(len(recs)))
            assert _is_subsequence([(r.key, r.value) for r in recs], records)
        keyed = [(k, v) for k, v in records if k is not None]
        for key in {k for k, _ in keyed}:
            sent = [v for k, v in keyed if k == key]
            received = [r.value for r in got if r.key == key]
            assert received == sent
            assert {r.partition for r in got if r.key == key} == {partition_for(key, partitions)}
        assert sorted((r.value for r in got if r.key is None), key=bytes) == sorted(
            (v for k, v in records if k is None), key=bytes
        )
        for part, recs in by_partition.items():
            tp = TopicPartition(topic, part)
            assert log.describe_topic(tp.topic).partitions[part].end == len(recs)

    check()


def test_timestamps_the_log_cannot_take_are_refused_at_send(log, new_topic):
    from loopline.log import InvalidRecord

    topic = new_topic()
    producer = log.producer()
    future = int(time.time() * 1000) + 2 * 3_600_000
    for bad in (future, 0, -5):
        with pytest.raises(InvalidRecord, match="timestamp"):
            producer.send(topic, b"x", timestamp=bad)
        with pytest.raises(InvalidRecord, match="timestamp"):
            producer.send_batch(topic, [b"x", b"y"], timestamps=[1_700_000_000_000, bad])
    soon = int(time.time() * 1000) + 30 * 60_000  # within Kafka's hour of tolerance
    producer.send(topic, b"ok", timestamp=soon)
    assert producer.flush() == 1
    producer.close()
