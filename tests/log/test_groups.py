"""Consumer groups: committed offsets, resume after restart, reset, lag, pause/resume."""

from __future__ import annotations

from loopline.log import TopicPartition
from support import consume_all, unique


def _produce(log, topic, values, keys=None):
    producer = log.producer()
    for i, value in enumerate(values):
        producer.send(topic, value, keys[i] if keys else None)
    assert producer.flush() == len(values)
    producer.close()


def test_group_resumes_at_committed_offset(log, new_topic):
    topic = new_topic(partitions=2)
    keys = [b"k%d" % (i % 5) for i in range(40)]
    _produce(log, topic, [b"%d" % i for i in range(40)], keys)
    group = unique()
    first = log.consumer(group, [topic], reset="earliest")
    got = consume_all(first, 40)
    assert len(got) == 40
    # commit only part of what was read: the next member must start exactly there
    committed = {}
    for record in got[:25]:
        committed[record.topic_partition] = record.offset + 1
    first.commit(committed)
    first.close()

    second = log.consumer(group, [topic], reset="earliest")
    assert second.committed() == {
        tp: committed.get(tp) for tp in [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    }
    rest = consume_all(second, 15)
    assert sorted(r.value for r in rest) == sorted(r.value for r in got[25:])
    assert not set((r.partition, r.offset) for r in rest) & set(
        (r.partition, r.offset) for r in got[:25]
    )
    second.commit()
    second.close()
    third = log.consumer(group, [topic], reset="earliest")
    assert third.poll(timeout=1.0) == []
    assert sum(third.lag().values()) == 0
    third.close()


def test_new_group_reset_latest_reads_only_new_records(log, new_topic):
    topic = new_topic()
    _produce(log, topic, [b"old-1", b"old-2"])
    consumer = log.consumer(unique(), [topic], reset="latest")
    assert consumer.position(TopicPartition(topic, 0)) == 2
    _produce(log, topic, [b"new"])
    got = consume_all(consumer, 1)
    assert [r.value for r in got] == [b"new"]
    consumer.close()


def test_new_group_reset_earliest_reads_everything(log, new_topic):
    topic = new_topic()
    _produce(log, topic, [b"a", b"b"])
    consumer = log.consumer(unique(), [topic], reset="earliest")
    assert [r.value for r in consume_all(consumer, 2)] == [b"a", b"b"]
    consumer.close()


def test_groups_are_independent(log, new_topic):
    topic = new_topic()
    _produce(log, topic, [b"a", b"b", b"c"])
    one = log.consumer(unique(), [topic], reset="earliest")
    two = log.consumer(unique(), [topic], reset="earliest")
    assert len(consume_all(one, 3)) == 3
    one.commit()
    assert len(consume_all(two, 3)) == 3
    one.close()
    two.close()


def test_lag_per_partition(log, new_topic):
    topic = new_topic(partitions=2)
    producer = log.producer()
    for _ in range(6):
        producer.send(topic, b"x", partition=0)
    for _ in range(3):
        producer.send(topic, b"y", partition=1)
    producer.flush()
    consumer = log.consumer(unique(), [topic], reset="earliest")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    assert consumer.lag() == {tp0: 6, tp1: 3}
    consumer.seek(tp0, 4)
    assert consumer.lag()[tp0] == 2
    consumer.seek_to_end()
    assert consumer.lag() == {tp0: 0, tp1: 0}
    consumer.close()


def test_pause_and_resume(log, new_topic):
    topic = new_topic(partitions=2)
    producer = log.producer()
    producer.send(topic, b"p0", partition=0)
    producer.send(topic, b"p1", partition=1)
    producer.flush()
    consumer = log.consumer(unique(), [topic], reset="earliest")
    tp0 = TopicPartition(topic, 0)
    consumer.pause([tp0])
    got = consume_all(consumer, 1, timeout=10)
    assert [r.value for r in got] == [b"p1"]
    assert consumer.poll(timeout=1.0) == []
    consumer.resume([tp0])
    assert [r.value for r in consume_all(consumer, 1, timeout=10)] == [b"p0"]
    consumer.close()


def test_assignment_covers_every_partition(log, new_topic):
    topic = new_topic(partitions=3)
    consumer = log.consumer(unique(), [topic], reset="earliest")
    assert sorted(consumer.assignment()) == [TopicPartition(topic, p) for p in range(3)]
    consumer.close()


def test_commit_stores_only_partitions_read_or_seeked(log, new_topic):
    topic = new_topic(partitions=2)
    producer = log.producer()
    producer.send(topic, b"a", partition=0)
    producer.send(topic, b"b", partition=1)
    producer.flush()
    group = unique()
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = log.consumer(group, [topic], reset="earliest")
    consumer.pause([tp1])
    assert [r.value for r in consume_all(consumer, 1)] == [b"a"]
    consumer.commit()
    assert consumer.committed() == {tp0: 1, tp1: None}
    consumer.seek(tp1, 1)
    consumer.commit()
    assert consumer.committed() == {tp0: 1, tp1: 1}
    consumer.close()


def test_a_groups_committed_offsets_are_read_without_joining_it(log, new_topic):
    topic, other = new_topic(partitions=2), new_topic()
    _produce(log, topic, [b"%d" % i for i in range(20)], [b"k%d" % (i % 4) for i in range(20)])
    _produce(log, other, [b"x", b"y", b"z"])
    group = unique()
    assert log.committed_offsets(group) == {}  # a group that never committed
    member = log.consumer(group, [topic, other], reset="earliest")
    got = consume_all(member, 23)
    assert len(got) == 23
    commits = {TopicPartition(topic, 0): 3, TopicPartition(other, 0): 2}
    member.commit(commits)
    # read while the member is live (on the embedded log, a second *member* would be refused)
    assert log.committed_offsets(group) == commits
    member.commit()  # every partition it read, to its position
    ends = {
        TopicPartition(t, p.partition): p.end
        for t in (topic, other)
        for p in log.describe_topic(t).partitions
    }
    assert log.committed_offsets(group) == ends
    # the member is undisturbed: it still reads and commits as the group's member
    _produce(log, other, [b"later"])
    assert [r.value for r in consume_all(member, 1)] == [b"later"]
    member.commit()
    assert log.committed_offsets(group)[TopicPartition(other, 0)] == 4
    member.close()
    assert log.committed_offsets(unique()) == {}
