"""Transactions: output records and input offsets commit atomically, or not at all."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.log import TopicConfig, TopicPartition, TransactionError
from support import consume_all, examples, unique


def _fill(log, topic, n):
    producer = log.producer()
    for i in range(n):
        producer.send(topic, b"in-%d" % i)
    producer.flush()
    producer.close()


def test_committed_transaction_makes_records_and_offsets_visible(log, new_topic):
    source, sink = new_topic(), new_topic()
    _fill(log, source, 5)
    group = unique()
    consumer = log.consumer(group, [source], reset="earliest")
    producer = log.producer(transactional_id=unique("txn"))
    records = consume_all(consumer, 5)
    producer.begin_transaction()
    for r in records:
        producer.send(sink, r.value.replace(b"in", b"out"))
    producer.send_offsets(consumer)
    producer.commit_transaction()
    assert consumer.committed() == {TopicPartition(source, 0): 5}
    reader = log.consumer(None, [sink], reset="earliest")
    assert [r.value for r in consume_all(reader, 5)] == [b"out-%d" % i for i in range(5)]
    reader.close()
    consumer.close()
    producer.close()


def test_aborted_transaction_is_never_seen(log, new_topic):
    source, sink = new_topic(), new_topic()
    _fill(log, source, 3)
    group = unique()
    consumer = log.consumer(group, [source], reset="earliest")
    producer = log.producer(transactional_id=unique("txn"))
    records = consume_all(consumer, 3)
    producer.begin_transaction()
    producer.send(sink, b"aborted")
    producer.send_offsets(consumer)
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(sink, b"kept")
    producer.commit_transaction()
    assert consumer.committed() == {TopicPartition(source, 0): None}
    reader = log.consumer(None, [sink], reset="earliest", read_committed=True)
    got = consume_all(reader, 1, timeout=10)
    got += reader.poll(timeout=1.0)
    assert [r.value for r in got] == [b"kept"]
    assert len(records) == 3
    reader.close()
    consumer.close()
    producer.close()


def test_open_transaction_is_invisible_until_commit(log, new_topic):
    sink = new_topic()
    producer = log.producer(transactional_id=unique("txn"))
    reader = log.consumer(None, [sink], reset="earliest", read_committed=True)
    producer.begin_transaction()
    producer.send(sink, b"pending")
    producer.flush()
    assert reader.poll(timeout=1.5) == []
    producer.commit_transaction()
    assert [r.value for r in consume_all(reader, 1, timeout=10)] == [b"pending"]
    reader.close()
    producer.close()


def test_transactions_need_a_transactional_id(log):
    producer = log.producer()
    with pytest.raises(TransactionError):
        producer.begin_transaction()
    producer.close()


def test_random_sequences_of_commits_and_aborts(log, backend):
    """Whatever mix of commits and aborts, readers see exactly the committed records, in order."""

    @settings(
        max_examples=examples(backend, 30, 4),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(st.tuples(st.booleans(), st.integers(1, 5)), min_size=1, max_size=6))
    def check(transactions):
        sink = unique("txn-sink")
        log.create_topic(sink, TopicConfig(partitions=2))
        producer = log.producer(transactional_id=unique("txn"))
        expected = []
        for t, (commit, n) in enumerate(transactions):
            producer.begin_transaction()
            values = [b"%d-%d" % (t, i) for i in range(n)]
            for v in values:
                producer.send(sink, v, b"same-key")
            if commit:
                producer.commit_transaction()
                expected += values
            else:
                producer.abort_transaction()
        producer.close()
        reader = log.consumer(None, [sink], reset="earliest", read_committed=True)
        got = consume_all(reader, len(expected), timeout=15)
        got += reader.poll(timeout=0.5)
        reader.close()
        assert [r.value for r in got] == expected

    check()
