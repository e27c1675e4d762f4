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

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from loopline.log import Log, TopicConfig, open_log
from loopline.log.kafka.config import (
    CONSUMER_DEFAULTS,
    PRODUCER_DEFAULTS,
    PRODUCER_REQUIRED,
)

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


def loopline_consume(log: Log, topic: str, n: int) -> float:
    """Records/s of reading `n` records; joining the group happens before the clock starts."""
    consumer = log.consumer(f"bench-{uuid.uuid4().hex[:8]}", [topic], reset="earliest")
    got = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        got += len(consumer.poll(max_records=CHUNK, timeout=1.0))
    elapsed = time.perf_counter() - start
    consumer.close()
    if got != n:
        raise SystemExit(f"loopline consumed {got} of {n} records")
    return n / elapsed


# What a user writes with plain confluent-kafka for the same guarantees: idempotent,
# acks=all, the Java client's partitioner, read_committed, manual commits.
PLAIN_PRODUCER = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    "linger.ms": 5,
}
PLAIN_CONSUMER = {"enable.auto.commit": False, "isolation.level": "read_committed"}
# The same client with exactly the librdkafka settings loopline's Kafka backend uses,
# so the difference left is loopline's own Python layer.
TUNED_PRODUCER = {**PRODUCER_DEFAULTS, **PRODUCER_REQUIRED}
TUNED_CONSUMER = {**PLAIN_CONSUMER, **CONSUMER_DEFAULTS}


def plain_produce(
    bootstrap: str, topic: str, keys: list[bytes], values: list[bytes], config: dict
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, **config})
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


def plain_consume(bootstrap: str, topic: str, n: int, partitions: int, config: dict) -> float:
    """Records/s of reading `n` records, reading every value, as a plain consumer would."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-plain-{uuid.uuid4().hex[:8]}",
            **config,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        for message in consumer.consume(CHUNK, 1.0):
            if message.error() is None:
                message.value()
                got += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    if got != n:
        raise SystemExit(f"plain confluent-kafka consumed {got} of {n} records")
    return n / elapsed


def new_topic(admin: AdminClient, partitions: int) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


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
        emb_consume = loopline_consume(embedded, "bench", n)
        print(f"embedded consume: {emb_consume:,.0f} records/s")
        embedded.close()

    kafka = open_log(f"kafka://{args.kafka}")
    admin = AdminClient({"bootstrap.servers": args.kafka})
    # Warm the broker up (page cache, JIT) so the first contestant is not the slow one.
    warm = new_topic(admin, partitions)
    plain_produce(args.kafka, warm, keys[:100_000], values[:100_000], PLAIN_PRODUCER)
    plain_consume(args.kafka, warm, min(n, 100_000), partitions, PLAIN_CONSUMER)

    figures = {}
    for name, produce_config, consume_config in (
        ("confluent-kafka", PLAIN_PRODUCER, PLAIN_CONSUMER),
        ("confluent-kafka with loopline's settings", TUNED_PRODUCER, TUNED_CONSUMER),
    ):
        topic = new_topic(admin, partitions)
        figures[name] = (
            timed(lambda t=topic, c=produce_config: plain_produce(args.kafka, t, keys, values, c)),
            plain_consume(args.kafka, topic, n, partitions, consume_config),
        )
    topic = new_topic(admin, partitions)
    figures["loopline kafka"] = (
        timed(lambda: loopline_produce(kafka, topic, keys, values)),
        loopline_consume(kafka, topic, n),
    )
    for name, (produce_rate, consume_rate) in figures.items():
        print(f"{name} produce: {produce_rate:,.0f} records/s")
        print(f"{name} consume: {consume_rate:,.0f} records/s")
    ll_p, ll_c = figures["loopline kafka"]
    for name in ("confluent-kafka", "confluent-kafka with loopline's settings"):
        p, c = figures[name]
        print(f"ratio loopline kafka / {name}, produce: {ll_p / p:.2f}")
        print(f"ratio loopline kafka / {name}, consume: {ll_c / c:.2f}")
    kafka.close()


if __name__ == "__main__":
    main()
