"""Dead letters: records a consumer cannot decode are set aside with the reason; it goes on."""

from __future__ import annotations

import msgspec
import pytest

from loopline.contracts import DeadLetter, LogRegistry, Topic, dlq_topic
from loopline.log import TopicPartition
from support import consume_all, unique


class Purchase(msgspec.Struct):
    member_id: str
    amount: float


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_undecodable_records_go_to_the_dlq_and_the_consumer_continues(log, encoding):
    registry = LogRegistry(log)
    topic = Topic(unique("purchases"), Purchase, key="member_id", encoding=encoding)
    topic.create(log, registry)
    good = topic.producer(log, registry)
    raw = log.producer()
    good.send(Purchase("m-1", 9.5))
    good.flush()
    raw.send(topic.name, b"{not json", b"m-2", headers=(("origin", b"legacy"),))
    raw.send(topic.name, b'{"member_id": "m-3"}', b"m-3")
    raw.send(topic.name, None, b"m-4")
    raw.flush()
    good.send(Purchase("m-5", 1.0))
    good.flush()

    group = unique()
    consumer = topic.consumer(log, registry, group=group, reset="earliest")
    got = []
    while len(got) < 2:
        batch = consumer.poll(timeout=5.0)
        assert batch or len(got) == 2, "the consumer stopped at a bad record"
        got += batch
    assert [m.value.member_id for m in got] == ["m-1", "m-5"]
    assert consumer.dead_lettered == 3
    consumer.commit()
    assert consumer.consumer.committed() == {TopicPartition(topic.name, 0): 5}

    reader = log.consumer(None, [dlq_topic(topic.name)], reset="earliest")
    letters = [DeadLetter.from_record(r) for r in consume_all(reader, 3)]
    assert [(d.source_topic, d.source_offset) for d in letters] == [
        (topic.name, 1),
        (topic.name, 2),
        (topic.name, 3),
    ]
    assert all(d.contract == f"{topic.name} v1" for d in letters)
    assert letters[0].record.value == b"{not json"
    assert letters[0].original_headers == (("origin", b"legacy"),)
    assert letters[1].record.key == b"m-3"
    assert "amount" in letters[1].reason or "magic" in letters[1].reason
    assert "tombstone" in letters[2].reason
    reader.close()
    consumer.close()
    registry.close()
