"""Log throughput: loopline on each backend against plain confluent-kafka, in one run.

Produces then consumes N keyed records of 100 bytes (default 1,000,000) through

- loopline's embedded log (batch API: `send_batch`, `poll(max_records=10_000)`);
- loopline's Kafka backend;
- plain confluent-kafka with the same producer settings (idempotent, acks=all,
  murmur2 partitioner), against the same broker,

and prints one line per figure plus the ratios. Needs a broker:

    bash scripts/kafka.sh start
    python bench/log_throughput.py --kafka 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from loopline.log import Log, TopicConfig, open_log

CHUNK = 10_000


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = fn()
    elapsed = time.perf_counter() - start
    return n / elapsed


def make_data(n: int) -> tuple[list[bytes], list[bytes]]:
    value = os.urandom(100)
    return [b"key-%08d" % i for i in range(n)], [value] * n


def loopline_produce(log: Log, topic: str, keys: list[bytes], values: list[bytes]) -> int:
    producer = log.producer()
    for i in range(0, len(values), CHUNK):
        producer.send_batch(topic, values[i : i + CHUNK], keys[i : i + CHUNK])
    producer.flush()
    producer.close()
    return len(values)


def loopline_consume(log: Log, topic: str, n: int) -> int:
    consumer = log.consumer(f"bench-{uuid.uuid4().hex[:8]}", [topic], reset="earliest")
    got = 0
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        got += len(consumer.poll(max_records=CHUNK, timeout=1.0))
    consumer.close()
    if got != n:
        raise SystemExit(f"loopline consumed {got} of {n} records")
    return got


def plain_produce(bootstrap: str, topic: str, keys: list[bytes], values: list[bytes]) -> int:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            "batch.num.messages": 10_000,
        }
    )
    produce = producer.produce
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(120)
    if remaining:
        raise SystemExit(f"plain producer left {remaining} records undelivered")
    return len(values)


def plain_consume(bootstrap: str, topic: str, n: int) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-plain-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        for message in consumer.consume(CHUNK, 1.0):
            if message.error() is None:
                message.value()
                got += 1
    consumer.close()
    if got != n:
        raise SystemExit(f"plain confluent-kafka consumed {got} of {n} records")
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--kafka",
        default=os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="bootstrap servers of the broker to compare on",
    )
    args = parser.parse_args()
    n, partitions = args.records, args.partitions
    keys, values = make_data(n)
    print(f"log_throughput: {n:,} keyed records of 100 bytes, {partitions} partitions")

    with tempfile.TemporaryDirectory() as tmp:
        embedded = open_log(f"embedded:{tmp}")
        embedded.create_topic("bench", TopicConfig(partitions=partitions))
        emb_produce = timed(lambda: loopline_produce(embedded, "bench", keys, values))
        print(f"embedded produce: {emb_produce:,.0f} records/s")
        emb_consume = timed(lambda: loopline_consume(embedded, "bench", n))
        print(f"embedded consume: {emb_consume:,.0f} records/s")
        embedded.close()

    kafka = open_log(f"kafka://{args.kafka}")
    topic_ll = f"bench-loopline-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic_ll, TopicConfig(partitions=partitions))
    topic_plain = f"bench-plain-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.kafka})
    admin.create_topics([NewTopic(topic_plain, partitions, 1)])[topic_plain].result(30)

    plain_p = timed(lambda: plain_produce(args.kafka, topic_plain, keys, values))
    print(f"confluent-kafka produce: {plain_p:,.0f} records/s")
    kafka_p = timed(lambda: loopline_produce(kafka, topic_ll, keys, values))
    print(f"loopline kafka produce: {kafka_p:,.0f} records/s")
    plain_c = timed(lambda: plain_consume(args.kafka, topic_plain, n))
    print(f"confluent-kafka consume: {plain_c:,.0f} records/s")
    kafka_c = timed(lambda: loopline_consume(kafka, topic_ll, n))
    print(f"loopline kafka consume: {kafka_c:,.0f} records/s")
    print(f"ratio loopline kafka / confluent-kafka, produce: {kafka_p / plain_p:.2f}")
    print(f"ratio loopline kafka / confluent-kafka, consume: {kafka_c / plain_c:.2f}")
    print(f"ratio embedded / confluent-kafka, produce: {emb_produce / plain_p:.2f}")
    print(f"ratio embedded / confluent-kafka, consume: {emb_consume / plain_c:.2f}")
    for topic in (topic_ll, topic_plain):
        kafka.delete_topic(topic)
    kafka.close()


if __name__ == "__main__":
    main()
