"""The monitor's records gained each feature's served `bins` (and `bins_id`): the backward rule holds.

A log whose ``loopline.monitor`` contract was registered by a monitor before
the field existed takes the new version when a new monitor starts, and the
records already written decode, with no bins.
"""

from __future__ import annotations

from typing import Any

import msgspec

from loopline.contracts import LogRegistry, avro_schema
from loopline.monitor.records import FeatureStats, MonitorRecord, monitor_topic
from support import unique


def without_bins(schema: Any) -> Any:
    """`schema` without the fields ``bins`` and ``bins_id`` (the version before them)."""
    if isinstance(schema, dict):
        out = {k: without_bins(v) for k, v in schema.items()}
        if out.get("type") == "record":
            out["fields"] = [f for f in out["fields"] if f["name"] not in ("bins", "bins_id")]
        return out
    if isinstance(schema, list):
        return [without_bins(s) for s in schema]
    return schema


def test_bins_register_over_the_version_before_under_the_backward_rule(log) -> None:
    registry = LogRegistry(log, topic=unique("schemas"))
    topic = monitor_topic(unique("shop"))
    before = without_bins(avro_schema(MonitorRecord))
    assert "bins" not in str(before) and "bins" in str(avro_schema(MonitorRecord))
    assert registry.register(topic.contract_name, before).version == 1
    topic.create(log, registry)  # what a monitor of this version does when it starts
    assert [v.version for v in registry.versions(topic.contract_name)] == [1, 2]
    assert registry.mode(topic.contract_name) == "backward"
    registry.close()


def test_a_record_written_before_bins_decodes_without_them() -> None:
    now = MonitorRecord(
        source="decisions", window="1m", start=0, end=60_000, model="m", model_version=2,
        arm="", segment="", decisions=3, candidates=3,
        features=[FeatureStats(name="age", rows=3, present=3, covered=2, coverage=2 / 3,
                               mean=31.0, psi=0.1, bins=[1, 2, 0], bins_id="0123456789ab")],
    )  # fmt: skip
    old = msgspec.json.decode(msgspec.json.encode(now))
    del old["features"][0]["bins"], old["features"][0]["bins_id"]
    decoded = msgspec.json.decode(msgspec.json.encode(old), type=MonitorRecord)
    assert decoded.features[0].bins is None
    assert decoded == msgspec.structs.replace(
        now, features=[msgspec.structs.replace(now.features[0], bins=None, bins_id=None)]
    )
