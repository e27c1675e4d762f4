"""What only the Kafka backend promises, on the real broker (the conformance suite covers the rest).

- a key lands in the partition Kafka's Java client would choose;
- secrets in the Kafka config never show in a repr, an error or a log line;
- loopline's topics are ordinary Kafka topics: plain confluent-kafka clients read
  what loopline writes, loopline reads what they write, and consumer groups share
  committed offsets;
- transaction markers do not leave a lag behind, and a group member joins while
  the others are busy.

The broker address comes from ``LOOPLINE_KAFKA_BOOTSTRAP`` (default
127.0.0.1:9092, `scripts/kafka.sh start`). An unreachable broker fails these
tests; they are never skipped.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer as PlainConsumer
from confluent_kafka import Producer as PlainProducer
from confluent_kafka import TopicPartition as PlainTopicPartition

from loopline.log import LogError, LogUnavailable, Record, TopicConfig, TopicPartition, open_log
from loopline.log.kafka import KafkaLog, redacted
from loopline.log.partitioner import partition_for

pytestmark = pytest.mark.kafka

BOOTSTRAP = os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
SECRET = "s3cr3t-Pa55word-do-not-print"


@pytest.fixture(scope="module")
def log() -> Iterator[KafkaLog]:
    try:
        handle = open_log(f"kafka://{BOOTSTRAP}")
    except LogUnavailable as exc:
        pytest.fail(f"{exc} (start one with `bash scripts/kafka.sh start`)", pytrace=False)
    assert isinstance(handle, KafkaLog)
    yield handle
    handle.close()


@pytest.fixture
def new_topic(log: KafkaLog) -> Iterator[Callable[..., str]]:
    """Create topics with unique names; delete them afterwards."""
    created: list[str] = []

    def create(partitions: int = 1) -> str:
        name = f"test-kafka-{uuid.uuid4().hex[:12]}"
        log.create_topic(name, TopicConfig(partitions=partitions))
        created.append(name)
        return name

    yield create
    for name in created:
        log.delete_topic(name)


def read(consumer, expected: int, timeout: float = 30.0) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        records += consumer.poll(max_records=1000, timeout=0.5)
    assert len(records) == expected, f"read {len(records)} records, expected {expected}"
    return records


def read_plain(consumer: PlainConsumer, expected: int, timeout: float = 30.0) -> list:
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
    assert len(messages) == expected, f"read {len(messages)} messages, expected {expected}"
    return messages


def plain_consumer(group: str) -> PlainConsumer:
    return PlainConsumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


# -- partitioning ---------------------------------------------------------------


@pytest.mark.parametrize("partitions", [7, 12])
def test_keys_land_in_the_partition_the_java_client_chooses(log, new_topic, partitions):
    # librdkafka's murmur2_random (what loopline's producer uses) must agree with
    # loopline's murmur2, which reproduces Kafka's own Java test vectors.
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    keys = list(
        dict.fromkeys(
            [b"", b"member-42"] + [rng.randbytes(rng.randrange(1, 300)) for _ in range(1500)]
        )
    )
    topic = new_topic(partitions)
    producer = log.producer()
    half = len(keys) // 2
    for key in keys[:half]:
        producer.send(topic, b"one", key=key)
    producer.send_batch(topic, [b"batch"] * (len(keys) - half), keys=keys[half:])
    assert producer.flush() == len(keys)
    producer.close()

    consumer = log.consumer(None, [topic], reset="earliest")
    wrong = [
        (r.key, r.partition, partition_for(r.key, partitions))
        for r in read(consumer, len(keys))
        if r.partition != partition_for(r.key, partitions)
    ]
    consumer.close()
    assert wrong == [], f"seed {seed}: (key, Kafka's partition, murmur2's) {wrong[:5]}"
    assert partition_for(b"member-42", 12) == 6


# -- secrets --------------------------------------------------------------------


def test_secrets_are_redacted_from_reprs(new_topic):
    config = {
        "sasl.username": "app",
        "sasl.password": SECRET,
        "ssl.key.password": SECRET + "-key",
        "sasl.oauthbearer.client.secret": SECRET + "-oauth",
    }
    # Plain-text listener: the SASL and TLS settings are carried but unused.
    log = KafkaLog(BOOTSTRAP, config)
    topic = new_topic()
    producer = log.producer()
    consumer = log.consumer(None, [topic])
    shown = " ".join(repr(x) for x in (log, producer, consumer, redacted(config)))
    assert SECRET not in shown
    assert "[redacted]" in repr(log) and "'sasl.username': 'app'" in repr(log)
    consumer.close()
    producer.close()
    log.close()


def test_secrets_are_redacted_from_errors_and_logs(log, caplog):
    caplog.set_level(logging.DEBUG, logger="loopline")
    refused = {
        # loopline refuses a setting its guarantees depend on ...
        "refused": {"sasl.password": SECRET, "acks": "1"},
        # ... librdkafka refuses a keystore it cannot open, quoting its path ...
        "keystore": {
            "security.protocol": "SSL",
            "ssl.keystore.location": f"/nonexistent/{SECRET}.p12",
            "ssl.keystore.password": SECRET,
        },
        # ... and the broker refuses a SASL login on its plain-text listener.
        "login": {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "app",
            "sasl.password": SECRET,
        },
    }
    for case, config in refused.items():
        with pytest.raises(LogError) as failure:
            KafkaLog(BOOTSTRAP, config, timeout=3)
        assert SECRET not in str(failure.value) and SECRET not in repr(failure.value), case
    assert "acks" in str(failure.value) or "access denied" in str(failure.value)
    assert SECRET not in caplog.text


def test_unreachable_cluster_fails_fast_with_a_clear_error(log):
    start = time.monotonic()
    with pytest.raises(LogUnavailable, match="did not answer") as failure:
        KafkaLog("127.0.0.1:1", timeout=2)
    assert time.monotonic() - start < 10
    assert "kafka://127.0.0.1:1" in str(failure.value)


# -- ordinary Kafka topics ------------------------------------------------------


def test_records_written_by_a_plain_kafka_producer_are_read_by_loopline(log, new_topic):
    topic = new_topic(3)
    plain = PlainProducer({"bootstrap.servers": BOOTSTRAP})
    plain.produce(
        topic,
        b'{"item": 7}',
        b"member-42",
        timestamp=1_700_000_000_123,
        headers=[("trace", b"abc"), ("empty", b"")],
    )
    plain.produce(topic, None, b"gone", partition=1, timestamp=1_700_000_000_456)
    plain.produce(topic, b"no key", partition=2, timestamp=1_700_000_000_789)
    assert plain.flush(10) == 0

    consumer = log.consumer(None, [topic], reset="earliest")
    got = sorted(read(consumer, 3), key=lambda r: r.timestamp)
    consumer.close()
    assert [(r.key, r.value, r.timestamp, r.headers) for r in got] == [
        (b"member-42", b'{"item": 7}', 1_700_000_000_123, (("trace", b"abc"), ("empty", b""))),
        (b"gone", None, 1_700_000_000_456, ()),
        (None, b"no key", 1_700_000_000_789, ()),
    ]
    assert [r.partition for r in got[1:]] == [1, 2]


def test_records_written_by_loopline_are_read_by_a_plain_kafka_consumer(log, new_topic):
    topic = new_topic(4)
    producer = log.producer()
    producer.send(
        topic,
        b"v1",
        key=b"member-42",
        timestamp=1_700_000_000_001,
        headers=(("source", b"loopline"),),
    )
    producer.send(topic, None, key=b"deleted", timestamp=1_700_000_000_002)
    producer.send_batch(
        topic,
        [b"b1", b"b2"],
        keys=[b"k1", b"k2"],
        timestamps=[1_700_000_000_003, 1_700_000_000_004],
    )
    assert producer.flush() == 4
    producer.close()

    plain = plain_consumer(f"plain-{uuid.uuid4().hex}")
    plain.subscribe([topic])
    messages = sorted(read_plain(plain, 4), key=lambda m: m.timestamp()[1])
    plain.close()
    assert [(m.key(), m.value(), m.timestamp()[1], m.headers()) for m in messages] == [
        (b"member-42", b"v1", 1_700_000_000_001, [("source", b"loopline")]),
        (b"deleted", None, 1_700_000_000_002, None),
        (b"k1", b"b1", 1_700_000_000_003, None),
        (b"k2", b"b2", 1_700_000_000_004, None),
    ]
    assert all(m.partition() == partition_for(m.key(), 4) for m in messages)


def test_consumer_groups_share_committed_offsets_with_plain_kafka_clients(log, new_topic):
    topic = new_topic(2)
    producer = log.producer()
    producer.send_batch(topic, [b"%d" % i for i in range(20)], keys=[b"%d" % i for i in range(20)])
    producer.flush()
    group = f"shared-{uuid.uuid4().hex}"

    # loopline commits after reading 5 records ...
    consumer = log.consumer(group, [topic], reset="earliest")
    first = consumer.poll(max_records=5, timeout=10)
    assert first
    consumer.commit()
    committed = consumer.committed()
    consumer.close()
    # ... a plain consumer of the group sees the offsets and reads on from there ...
    plain = plain_consumer(group)
    plain_view = plain.committed([PlainTopicPartition(*tp) for tp in committed], 10)
    assert {
        TopicPartition(p.topic, p.partition): p.offset for p in plain_view if p.offset >= 0
    } == {tp: offset for tp, offset in committed.items() if offset is not None}
    plain.subscribe([topic])
    rest = read_plain(plain, 20 - len(first))
    plain.commit(asynchronous=False)
    plain.close()
    assert {(r.partition, r.offset) for r in first}.isdisjoint(
        (m.partition(), m.offset()) for m in rest
    )
    # ... and loopline resumes after what the plain consumer committed.
    consumer = log.consumer(group, [topic], reset="earliest")
    assert consumer.lag() == dict.fromkeys(consumer.assignment(), 0)
    assert consumer.poll(timeout=1.0) == []
    consumer.close()


# -- Kafka's own mechanics ------------------------------------------------------


def test_transaction_markers_leave_no_lag(log, new_topic):
    # Each committed transaction adds a marker that takes an offset but is never
    # returned; a consumer that read everything must still report lag 0.
    topic = new_topic(1)
    producer = log.producer(transactional_id=f"markers-{uuid.uuid4().hex}")
    for i in range(3):
        producer.begin_transaction()
        producer.send(topic, b"%d" % i)
        producer.commit_transaction()
    producer.close()
    tp = TopicPartition(topic, 0)
    end = log.describe_topic(topic).partitions[0].end
    assert end == 6  # three records and three markers

    consumer = log.consumer(f"markers-{uuid.uuid4().hex}", [topic], reset="earliest")
    assert consumer.lag() == {tp: 6}
    assert [r.value for r in read(consumer, 3)] == [b"0", b"1", b"2"]
    consumer.poll(timeout=1.0)  # reaches the end of the partition
    assert consumer.lag() == {tp: 0}
    assert consumer.position(tp) == end
    consumer.commit()
    assert consumer.committed() == {tp: end}
    consumer.close()


@pytest.mark.slow
def test_a_member_joins_while_the_others_do_not_poll(log, new_topic):
    # Cooperative rebalancing: the second member gets its first (empty) assignment
    # without waiting for the first to poll, and the partitions move at their polls.
    topic = new_topic(4)
    group = f"two-{uuid.uuid4().hex}"
    first = log.consumer(group, [topic], reset="earliest")
    assert len(first.assignment()) == 4
    start = time.monotonic()
    second = log.consumer(group, [topic], reset="earliest")
    assert time.monotonic() - start < 15
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        first.assignment()
        and second.assignment()
        and len(first.assignment()) + len(second.assignment()) == 4
    ):
        first.poll(timeout=0.2)
        second.poll(timeout=0.2)
    assert sorted(first.assignment() + second.assignment()) == [
        TopicPartition(topic, p) for p in range(4)
    ]
    assert first.assignment() and second.assignment()
    first.close()
    second.close()


def test_aborting_the_transaction_of_a_fenced_producer_raises_a_log_error(log, new_topic):
    """A producer fenced by a newer one with its transactional id (a fatal state) says so
    through loopline's errors when its transaction is aborted, and closes; not a raw
    librdkafka exception from serving its callbacks."""
    topic = new_topic()
    tid = f"fenced-{uuid.uuid4().hex[:8]}"
    old = log.producer(transactional_id=tid)
    old.begin_transaction()
    old.send(topic, b"zombie")
    old.flush()
    new = log.producer(transactional_id=tid)
    try:
        with pytest.raises(LogError):
            old.commit_transaction()
        with pytest.raises(LogError):
            old.abort_transaction()
        old.close()
    finally:
        new.close()


def test_offsets_an_open_transaction_holds_are_waited_for_and_named(log, new_topic, caplog):
    """A group whose committed offsets a transaction still holds back (Kafka answers
    UNSTABLE_OFFSET_COMMIT until it ends): a new member reads nothing from anywhere else,
    and says it waits for an open transaction (and how to end a hanging one), not that
    the broker does not answer; once the transaction ends, the member starts at the
    offset committed before it."""
    topic = new_topic()
    tp = TopicPartition(topic, 0)
    group = f"held-{uuid.uuid4().hex}"
    feeder = log.producer()
    for i in range(10):
        feeder.send(topic, b"%d" % i, partition=0)
    feeder.flush()
    feeder.close()
    first = log.consumer(group, [topic], reset="earliest")
    assert len(read(first, 10)) == 10
    producer = log.producer(transactional_id=f"held-{uuid.uuid4().hex[:8]}")
    producer.begin_transaction()
    producer.send_offsets(first, {tp: 4})
    producer.commit_transaction()
    deadline = time.monotonic() + 30  # the coordinator writes them a moment after the commit
    while log.committed_offsets(group) != {tp: 4}:
        assert time.monotonic() < deadline, log.committed_offsets(group)
        time.sleep(0.2)
    producer.begin_transaction()
    producer.send_offsets(first, {tp: 8})  # left open: offset 8 is pending
    first.close()
    quick = KafkaLog(BOOTSTRAP, timeout=3)
    try:
        with caplog.at_level(logging.WARNING, logger="loopline"):
            member = quick.consumer(group, [topic], reset="earliest")
        assert member.poll(timeout=1.0) == []
        with pytest.raises(LogUnavailable) as held:
            member.position(tp)
        for message in (str(held.value), caplog.text):
            assert f"{topic}[0] are held back by a transaction that has not ended" in message
            assert "find-hanging" in message
        assert "did not answer" not in str(held.value)
        producer.abort_transaction()
        assert [r.offset for r in read(member, 6)] == [4, 5, 6, 7, 8, 9]
        assert member.position(tp) == 10
        member.close()
    finally:
        quick.close()
        producer.close()
