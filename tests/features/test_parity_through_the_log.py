"""Parity over the real log, on both backends: producer -> log -> processor -> changelog -> store.

A generated stream (tests/features/streams.py) is produced to real topics in
arrival order, with each record's arrival as its log timestamp. At random
instants T, after every record with arrival <= T is produced and the
processor has caught up, an online store in this process reads the vectors
at T. The offline builder then builds the same (entity, T) rows from the
records the log holds; zero mismatches are allowed (floats within 1e-9).
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings

from features.streams import VIEW_PARTITIONS, feature_set, offline_mismatches, streams
from loopline.app import App
from loopline.features.processor import FeatureProcessor
from loopline.features.store import FeatureStore
from loopline.log import TopicConfig
from support import unique

HOUR = 3_600_000
# Recent instants: the log refuses timestamps over an hour ahead, and Kafka's
# retention (7 days by timestamp) would delete records much older than now.
RECENT = (time.time_ns() // 1_000_000 // HOUR - 48) * HOUR


def test_parity_through_the_log(log, backend):
    examples = 3 if backend == "kafka" else 6

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(streams(base=RECENT, max_records=80, max_reads=10))
    def check(stream):
        records, reads = stream
        views, profiles = unique("views"), unique("profiles")
        log.create_topic(views, TopicConfig(partitions=VIEW_PARTITIONS))
        log.create_topic(profiles, TopicConfig(partitions=1, compact=True))
        topic = {"views": views, "profiles": profiles}
        features = feature_set(views, profiles)
        app = App(unique("parity"), features=features)
        instants = sorted((records[i]["arrival"] + extra, entity) for i, extra, entity in reads)

        producer = log.producer()
        processor = FeatureProcessor(log, app, commit_interval=0.05)
        store = FeatureStore(log, app)
        online = []
        sent = 0
        try:
            for at, entity in instants:
                while sent < len(records) and records[sent]["arrival"] <= at:
                    r = records[sent]
                    value = None if r["value"] is None else _json(r["value"])
                    producer.send(
                        topic[r["source"]],
                        value,
                        r["key"].encode(),
                        timestamp=r["arrival"],
                        partition=r["partition"],
                    )
                    sent += 1
                producer.flush()
                processor.run_until_caught_up()
                store.catch_up()
                online.append(store.vector("member", entity, at=at))
        finally:
            store.close()
            processor.close()
            producer.close()

        mismatches = offline_mismatches(features, records, instants, online, topic)
        assert mismatches == []

    check()


def _json(value: dict) -> bytes:
    import msgspec

    return msgspec.json.encode(value)
