"""A table's history, as `dataset build` needs it: what a compacted topic lost is said, not
silently filled with defaults (docs/decisions/0008 and 0009)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loopline import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.features.offline.datasets import DatasetError, build_dataset
from loopline.features.offline.history import Gap, Gaps
from loopline.log import TopicConfig
from loopline.stream.ranges import PartitionRange, TopicRange
from support import FAST_CLEANING, compact_now, read_all, unique

MINUTE = 60_000
member = Entity("member", key="member_id")


def profiles_app(topic: str) -> App:
    country = TableFeature("country", "country", default="??")
    return App("shop", features=FeatureSet(tables=[Table(topic, member, [country])]))


def write_profiles(log, topic: str, t1: int) -> None:
    """m2 lives in PT from t1 (never changed); m1 in DE from t1 and in FR from t1 + 10 min."""
    producer = log.producer()
    changes = [("m2", "PT", t1), ("m1", "DE", t1), ("m1", "FR", t1 + 10 * MINUTE)]
    for who, country, arrival in changes:
        value = json.dumps({"member_id": who, "country": country}).encode()
        producer.send(topic, value, who.encode(), timestamp=arrival)
    producer.flush()
    producer.close()


def write_spine(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.write_text("member_id,at\n" + "".join(f"{who},{at}\n" for who, at in rows))
    return path


def an_hour_ago() -> int:
    return (int(time.time() * 1000) - 60 * MINUTE) // MINUTE * MINUTE


def test_history_that_compaction_removed_is_refused_then_accepted_on_request(
    log, backend, tmp_path
):
    topic = unique("profiles")
    log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    t1 = an_hour_ago()
    write_profiles(log, topic, t1)
    compact_now(log, backend, topic)
    values = [r.value for r in read_all(log, topic) if r.key == b"m1"]
    assert [json.loads(v)["country"] for v in values] == ["FR"]  # DE was compacted away

    spine = write_spine(
        tmp_path / "spine.csv",
        [
            ("m1", t1 + 1000),  # online, the store served DE then: that record is gone
            ("m1", t1 + 11 * MINUTE),  # FR: the topic still holds it
            ("m2", t1 + 1000),  # PT: m2's only record, still held
            ("m3", t1 + 1000),  # never had a profile: the default is right
        ],
    )
    out = tmp_path / "train.parquet"
    with pytest.raises(DatasetError) as refused:
        build_dataset(log, profiles_app(topic), spine, out)
    message = str(refused.value)
    assert "\n" not in message
    assert f"table of topic {topic!r}: 1 of 4 spine rows" in message
    assert "compacted" in message and "--allow-missing-history" in message
    covered = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t1 + 10 * MINUTE) / 1000))
    assert f"from {covered}" in message  # when the topic's history of m1 starts
    assert not out.exists()

    manifest = build_dataset(log, profiles_app(topic), spine, out, allow_missing_history=True)
    assert pq.read_table(out).column("country").to_pylist() == ["??", "FR", "PT", "??"]
    assert manifest.missing_history == {topic: 1}


def test_a_table_topic_that_keeps_history_gives_the_value_then(log, tmp_path):
    topic = unique("profiles")
    log.create_topic(topic)  # not compacted: every change stays (retention forever)
    t1 = an_hour_ago()
    write_profiles(log, topic, t1)
    spine = write_spine(tmp_path / "spine.csv", [("m1", t1 + 1000), ("m1", t1 + 11 * MINUTE)])
    manifest = build_dataset(log, profiles_app(topic), spine, tmp_path / "train.parquet")
    assert pq.read_table(tmp_path / "train.parquet").column("country").to_pylist() == ["DE", "FR"]
    assert manifest.missing_history == {}


def test_a_compacted_topic_that_lost_nothing_a_row_needs_builds(log, backend, tmp_path):
    topic = unique("profiles")
    log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    t1 = an_hour_ago()
    write_profiles(log, topic, t1)
    compact_now(log, backend, topic)
    spine = write_spine(
        tmp_path / "spine.csv",
        [
            ("m1", t1 + 11 * MINUTE),  # after m1's first held record
            ("m2", t1 + 1000),
            ("m2", t1 - 1000),  # before m2's record, but nothing before it is missing
            # before m1's first held record, but the record compaction removed (offset 1)
            # came after m2's (offset 0, arrived at t1): it arrived at t1 or later
            ("m1", t1 - 1000),
            ("m3", t1),
        ],
    )
    manifest = build_dataset(log, profiles_app(topic), spine, tmp_path / "train.parquet")
    countries = pq.read_table(tmp_path / "train.parquet").column("country").to_pylist()
    assert countries == ["FR", "PT", "??", "??", "??"]
    assert manifest.missing_history == {}


def test_a_table_topic_whose_oldest_records_retention_deleted(log, tmp_path):
    topic = unique("profiles")
    log.create_topic(topic, TopicConfig(retention_ms=4000, extra={"segment.ms": "100"}))
    now = int(time.time() * 1000)
    producer = log.producer()
    # FR is timed ahead, so that retention keeps it while it deletes DE (flushed on its own)
    for country, arrival in [("DE", now - 30 * MINUTE), ("FR", now + 5 * MINUTE)]:
        value = json.dumps({"member_id": "m1", "country": country}).encode()
        producer.send(topic, value, b"m1", timestamp=arrival)
        producer.flush()
    deadline = time.monotonic() + 90
    while log.describe_topic(topic).partitions[0].start < 1:
        assert time.monotonic() < deadline, "retention did not delete the expired record"
        time.sleep(0.5)
        producer.send(topic, b"{}", b"filler")  # rolls the segment, so retention can take it
        producer.flush()
    producer.close()
    spine = write_spine(
        tmp_path / "spine.csv", [("m1", now - 20 * MINUTE), ("m1", now + 6 * MINUTE)]
    )
    with pytest.raises(DatasetError, match=r"1 of 2 spine rows .* retention deleted"):
        build_dataset(log, profiles_app(topic), spine, tmp_path / "train.parquet")


def test_gaps_are_found_across_chunks_and_only_where_records_can_be_removed():
    ranges = TopicRange("t", [PartitionRange(0, 0, 9), PartitionRange(1, 3, 9)])
    compacted = Gaps(ranges, compacted=True)
    compacted.see(0, [0, 1, 2], [10, 20, 30])
    compacted.see(0, [4, 5], [40, 50])  # offset 3 is missing: it arrived at 30 or later
    compacted.see(0, [7], [70])  # only the first gap matters
    compacted.see(1, [3, 5], [10, 20])
    assert compacted.found == {
        0: Gap(3, 30, "compaction"),
        1: Gap(0, None, "retention"),  # offsets 0 to 2 were deleted before the pin
    }
    deleting = Gaps(ranges, compacted=False)  # a gap there is a transaction marker
    deleting.see(0, [0, 2, 3], [10, 20, 30])
    assert deleting.found == {1: Gap(0, None, "retention")}
