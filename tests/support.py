"""Helpers for tests (import as `from support import ...`)."""

from __future__ import annotations

import time
import uuid

# Quick failure detection on Kafka, for tests that kill members with SIGKILL: a killed
# member never leaves its group, so its partitions move when its session ends, after 2 s
# (scripts/kafka.sh lets the broker allow it); its open transaction is aborted by the restart.
KAFKA_CONFIG = {
    "session.timeout.ms": 2000,
    "heartbeat.interval.ms": 500,
    "transaction.timeout.ms": 10000,
}


def selected(request, param: str, tests: tuple[str, ...] = ()) -> set:
    """The values of parameter `param` among the selected tests of `request`'s module (of
    `tests` only, when given), as ``(test name, value)`` pairs with `tests`, else values:
    for a module fixture that starts, at once, only what the selected tests will read."""
    found = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "module", None) is not request.module or param not in params:
            continue  # another module's test, or a doctest (it has no module)
        if not tests:
            found.add(params[param])
        elif item.originalname in tests:
            found.add((item.originalname, params[param]))
    return found


def unique(prefix: str = "g") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def consume_all(consumer, expected: int, timeout: float = 30.0, max_records: int = 1000) -> list:
    """Poll until `expected` records arrived or `timeout` passed; return what arrived."""
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        out += consumer.poll(max_records=max_records, timeout=0.5)
    return out


def examples(backend: str, embedded: int = 50, kafka: int = 8) -> int:
    """How many hypothesis examples to run: each Kafka example creates real topics."""
    return kafka if backend == "kafka" else embedded


def send_records(log, topic: str, records) -> None:
    """Write `records` ((key, value) pairs) to `topic` and wait until they are durable."""
    producer = log.producer()
    for key, value in records:
        producer.send(topic, value, key)
    producer.flush()
    producer.close()


def range_digest(records) -> str:
    """The digest a read of pinned ranges gives a partition's records, computed the plain way."""
    import hashlib
    import struct

    meta, keys, values = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    for r in records:
        sizes = [-1 if x is None else len(x) for x in (r.key, r.value)]
        meta.update(struct.pack(">qqqq", r.offset, r.timestamp, *sizes))
        keys.update(r.key or b"")
        values.update(r.value or b"")
    return hashlib.sha256(meta.digest() + keys.digest() + values.digest()).hexdigest()


# Settings that make Kafka's log cleaner act within seconds (as in tests/log/test_compaction.py);
# the embedded log honours the same names.
FAST_CLEANING = {
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "0",
    "min.compaction.lag.ms": "0",
}


def read_all(log, topic: str, timeout: float = 5.0) -> list:
    """Every record `topic` holds now, read from its beginning up to its end offsets (not
    until a poll comes back empty, which costs a whole poll timeout every time); it gives
    up after `timeout` seconds without a record (e.g. a transaction left open)."""
    consumer = log.consumer(None, [topic], reset="earliest")
    out: list = []
    try:
        ends = {p.partition: p.end for p in log.describe_topic(topic).partitions}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if batch := consumer.poll(10_000, timeout=0.2):
                out += batch
                deadline = time.monotonic() + timeout
            positions = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
            if all(positions.get(p, 0) >= end for p, end in ends.items()):
                break
    finally:
        consumer.close()
    return out


def compact_now(log, backend: str, *topics: str) -> None:
    """Compact `topics` for real: on the embedded log now, on Kafka by its log cleaner.

    On Kafka a record keyed ``filler`` (value ``old``, not JSON) is written to each topic
    and then written again until the cleaner has dropped the first one, so each topic ends
    with a ``filler`` record.
    """
    if backend == "embedded":
        for topic in topics:
            log.compact(topic)
        return
    producer = log.producer()
    deadline = time.monotonic() + 90
    for topic in topics:  # a first key that compaction must drop once it has run
        producer.send(topic, b"old", b"filler")
    producer.flush()
    while True:
        fillers = [[r for r in read_all(log, t) if r.key == b"filler"] for t in topics]
        if all(b"old" not in [r.value for r in f] for f in fillers):
            break
        assert time.monotonic() < deadline, "Kafka's log cleaner did not compact in 90 s"
        time.sleep(0.3)  # appending rolls the active segment, so the cleaner can take it
        for topic in topics:
            producer.send(topic, b"new", b"filler")
        producer.flush()
    producer.close()
