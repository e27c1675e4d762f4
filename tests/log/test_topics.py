"""Topics: create, describe, list, delete, on both backends."""

from __future__ import annotations

import pytest

from loopline.log import InvalidTopicConfig, TopicConfig, TopicExists, TopicNotFound
from support import unique


def test_create_describe_list_delete(log):
    name = unique("topic")
    log.create_topic(name, TopicConfig(partitions=3, retention_ms=7 * 86_400_000))
    assert name in log.list_topics()
    info = log.describe_topic(name)
    assert info.name == name
    assert info.config.partitions == 3
    assert info.config.compact is False
    assert info.config.retention_ms == 7 * 86_400_000
    assert [(p.partition, p.start, p.end) for p in info.partitions] == [
        (0, 0, 0),
        (1, 0, 0),
        (2, 0, 0),
    ]
    log.delete_topic(name)
    assert name not in log.list_topics()
    with pytest.raises(TopicNotFound):
        log.describe_topic(name)


def test_compacted_topic_reads_back_as_compacted(log):
    name = unique("table")
    log.create_topic(name, TopicConfig(compact=True, retention_bytes=10_000_000))
    config = log.describe_topic(name).config
    assert config.compact is True
    assert config.retention_bytes == 10_000_000


def test_create_twice_is_refused(log):
    name = unique("topic")
    log.create_topic(name)
    with pytest.raises(TopicExists):
        log.create_topic(name)


def test_delete_unknown_topic_names_it(log):
    with pytest.raises(TopicNotFound) as info:
        log.delete_topic("no-such-topic-here")
    assert "no-such-topic-here" in str(info.value)


@pytest.mark.parametrize("bad", ["", "has space", "slash/name", "x" * 250, ".."])
def test_invalid_topic_names_are_refused(log, bad):
    with pytest.raises(InvalidTopicConfig):
        log.create_topic(bad)


def test_deleted_topic_can_be_created_again_empty(log, new_topic):
    name = new_topic()
    producer = log.producer()
    producer.send(name, b"old")
    assert producer.flush() == 1
    log.delete_topic(name)
    log.create_topic(name)
    info = log.describe_topic(name)
    assert info.partitions[0].end - info.partitions[0].start == 0


def test_a_topic_created_again_has_another_id(log, new_topic):
    name, other = new_topic(), new_topic()
    first = log.describe_topic(name).id
    assert first and first == log.describe_topic(name).id  # stable while the topic lives
    assert log.describe_topic(other).id != first
    log.delete_topic(name)
    log.create_topic(name)
    assert log.describe_topic(name).id not in ("", first)
