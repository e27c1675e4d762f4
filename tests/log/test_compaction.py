"""Compaction: the latest value of every key stays; tombstoned keys eventually go."""

from __future__ import annotations

import time

from loopline.log import TopicConfig
from support import read_all, unique

# Settings that make Kafka's log cleaner act within seconds; the embedded log
# honours the same names.
FAST_CLEANING = {
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "0",
    "min.compaction.lag.ms": "0",
}


def _latest(records):
    latest = {}
    for r in records:
        latest[r.key] = r.value
    return latest


def test_compaction_keeps_latest_and_drops_tombstones(log):
    topic = unique("table")
    log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    producer = log.producer()
    for round_ in range(5):
        for k in range(20):
            producer.send(topic, b"v%d-%d" % (k, round_), b"key-%d" % k)
        producer.flush()
    for k in range(0, 20, 4):
        producer.send(topic, None, b"key-%d" % k)  # delete every fourth key
    producer.flush()
    expected = {b"key-%d" % k: b"v%d-4" % k for k in range(20) if k % 4}

    deadline = time.monotonic() + 90
    filler = 0
    while True:
        records = read_all(log, topic)
        live = {k: v for k, v in _latest(records).items() if k != b"filler"}
        # at every moment: the latest value of every key is there
        assert {k: v for k, v in live.items() if v is not None} == expected
        keys_seen = [r.key for r in records if r.key != b"filler"]
        if len(keys_seen) == len(expected) and all(v is not None for v in live.values()):
            break
        assert time.monotonic() < deadline, f"compaction did not finish: {len(keys_seen)} records"
        # Appending rolls the active segment on Kafka and triggers the cleaner here.
        time.sleep(0.3)
        filler += 1
        producer.send(topic, b"%d" % filler, b"filler")
        producer.flush()
    offsets = [r.offset for r in records]
    assert offsets == sorted(offsets)  # offsets never rewritten or reordered
    producer.close()
