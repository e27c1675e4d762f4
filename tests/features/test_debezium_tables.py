"""A table feature reads a Debezium topic as the table it captures, online and offline.

The records are what Debezium's PostgreSQL connector writes through Kafka
Connect's JsonConverter (schemas.enable=true): a key ``{"schema", "payload":
{"id": 7}}`` and a value ``{"schema", "payload": {"before", "after", "op",
...}}``, a delete (``op: d``, ``after: null``) followed by a tombstone.
Online the store serves the ``after`` row and the default after a delete;
`dataset build` gives the row as of each instant.
"""

from __future__ import annotations

import json

import msgspec
import pyarrow.parquet as pq

from loopline.app import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.features.offline.datasets import build_dataset
from loopline.features.processor import FeatureProcessor
from loopline.features.store import FeatureStore
from support import unique

T0 = 1_714_564_800_000


def _key(member: int) -> bytes:
    return msgspec.json.encode({"schema": {"type": "struct"}, "payload": {"id": member}})


def _event(op: str, before: dict | None, after: dict | None) -> bytes:
    payload = {"before": before, "after": after, "op": op, "source": {"lsn": 1}, "ts_ms": T0}
    return msgspec.json.encode({"schema": {"type": "struct"}, "payload": payload})


def test_a_debezium_topic_feeds_a_table_feature_online_and_offline(log, tmp_path):
    topic = unique("dbserver.public.members")
    log.create_topic(topic)
    producer = log.producer()
    changes = [
        (T0, 7, _event("r", None, {"id": 7, "tier": 1})),
        (T0 + 1000, 8, _event("c", None, {"id": 8, "tier": 5})),
        (T0 + 2000, 7, _event("u", {"id": 7, "tier": 1}, {"id": 7, "tier": 2})),
        (T0 + 3000, 8, _event("d", {"id": 8, "tier": 5}, None)),
        (T0 + 3000, 8, None),  # Debezium's tombstone after a delete
    ]
    for at, member, value in changes:
        producer.send(topic, value, _key(member), timestamp=at)
    producer.flush()
    producer.close()
    features = [TableFeature("tier", "tier", default=0)]
    app = App(
        unique("dbz"),
        features=FeatureSet(tables=[Table(topic, Entity("member", key="id"), features)]),
    )

    processor = FeatureProcessor(log, app)
    processor.run_until_caught_up()
    processor.close()
    with FeatureStore(log, app) as store:
        store.catch_up()
        assert store.get("member", ["7", "8"], ["tier"]) == [{"tier": 2}, {"tier": 0}]

    spine = tmp_path / "spine.jsonl"
    instants = [("7", T0 + 500), ("7", T0 + 2500), ("8", T0 + 1500), ("8", T0 + 3500)]
    spine.write_text("".join(json.dumps({"id": k, "at": at}) + "\n" for k, at in instants))
    out = tmp_path / "train.parquet"
    build_dataset(log, app, spine, out)
    assert [r["tier"] for r in pq.read_table(out).to_pylist()] == [1, 2, 5, 0]
