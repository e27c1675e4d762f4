"""Datasets from the log: point-in-time values, pinned offset ranges, byte-identical rebuilds.

Every test runs on the embedded log and on the real Kafka broker.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline import App
from loopline.features import Aggregations, Derived, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Distinct, Last, Max, Mean, Min, Sum
from loopline.features.offline import build, events_table
from loopline.features.offline.datasets import (
    DatasetError,
    application_spec,
    build_dataset,
    rebuild,
)
from loopline.features.offline.manifests import manifest_path, read_manifest, write_manifest
from loopline.features.sources import SourceReader
from loopline.log import TopicConfig, TopicPartition
from support import examples, unique

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
member = Entity("member", key="member_id")


def hour_two_days_ago() -> int:
    """A tile boundary recent enough for Kafka's retention and clock checks."""
    return (int(time.time() * 1000) - 2 * DAY) // HOUR * HOUR


def send(producer, topic: str, value: dict | bytes | None, arrival: int, key: str | None = None):
    data = json.dumps(value).encode() if isinstance(value, dict) else value
    producer.send(topic, data, key.encode() if key else None, timestamp=arrival)


def write_csv(path: Path, rows: list[dict]) -> Path:
    lines = [",".join(rows[0])] + [",".join(str(v) for v in row.values()) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clicks_app(topic: str) -> App:
    clicks = Aggregations(
        topic,
        member,
        [
            *Count.per_window("clicks", windows=["1h"]),
            *Sum.per_window("spent", field="amount", windows=["1h"]),
        ],
        time="at",
        lateness="15m",
    )
    return App("shop", features=FeatureSet([clicks]))


def hand_made(log, tmp_path: Path) -> tuple[str, int, Path]:
    """The stream and spine of the worked example (one partition): see the expectations."""
    topic = unique("clicks")
    log.create_topic(topic, TopicConfig(partitions=1))
    t0 = hour_two_days_ago()
    producer = log.producer()
    for minute, amount, arrival, who in [
        (10, 1.0, 10, "m1"),
        (20, 2.0, 20, "m1"),
        (30, 4.0, 30, "m1"),  # exactly at a spine instant: not before it
        (5, 8.0, 31, "m1"),  # 25 minutes behind the watermark (30), lateness 15: late
        (35, 32.0, 35, "m2"),
        (25, 16.0, 50, "m1"),  # behind the watermark (35) by 10 minutes: counts, from 50
    ]:
        value = {"member_id": who, "at": t0 + minute * MINUTE, "amount": amount}
        send(producer, topic, value, t0 + arrival * MINUTE, key=who)
    send(producer, topic, b"not json", t0 + 51 * MINUTE)
    producer.flush()
    producer.close()
    spine = write_csv(
        tmp_path / "spine.csv",
        [
            {"member_id": "m1", "at": t0 + 30 * MINUTE, "label": 1},
            {"member_id": "m1", "at": t0 + 30 * MINUTE + 1, "label": 0},
            {"member_id": "m1", "at": t0 + 40 * MINUTE, "label": 1},
            {"member_id": "m1", "at": t0 + 55 * MINUTE, "label": 0},
            {"member_id": "m2", "at": t0 + 40 * MINUTE, "label": 1},
            {"member_id": "m3", "at": t0 + 40 * MINUTE, "label": 0},
        ],
    )
    return topic, t0, spine


def test_values_are_what_the_online_system_knew_then(log, tmp_path):
    topic, t0, spine = hand_made(log, tmp_path)
    out = tmp_path / "train.parquet"
    manifest = build_dataset(log, clicks_app(topic), spine, out)
    rows = pq.read_table(out).to_pylist()
    at = [t0 + m * MINUTE for m in (30, 30, 40, 55, 40, 40)]
    at[1] += 1
    assert rows == [
        # at 30m: the event at 30m is not before the instant; nothing else has arrived
        {"member_id": "m1", "at": at[0], "label": 1, "clicks_1h": 2, "spent_1h": 3.0},
        # one millisecond later it is
        {"member_id": "m1", "at": at[1], "label": 0, "clicks_1h": 3, "spent_1h": 7.0},
        # the late record never counts; the one arriving at 50m is not known yet
        {"member_id": "m1", "at": at[2], "label": 1, "clicks_1h": 3, "spent_1h": 7.0},
        {"member_id": "m1", "at": at[3], "label": 0, "clicks_1h": 4, "spent_1h": 23.0},
        {"member_id": "m2", "at": at[4], "label": 1, "clicks_1h": 1, "spent_1h": 32.0},
        {"member_id": "m3", "at": at[5], "label": 0, "clicks_1h": 0, "spent_1h": 0.0},
    ]
    (source,) = manifest.sources
    assert (source.records, source.undecodable) == (7, 1)
    assert manifest.rows == 6 and manifest.features == ["clicks_1h", "spent_1h"]


def test_records_after_the_pinned_end_are_not_used_and_rebuild_is_identical(log, tmp_path):
    topic, t0, spine = hand_made(log, tmp_path)
    app = clicks_app(topic)
    out = tmp_path / "train.parquet"
    manifest = build_dataset(log, app, spine, out)
    # Appended afterwards, not late, and known before every spine instant: it would change
    # every m1 row.
    producer = log.producer()
    value = {"member_id": "m1", "at": t0 + 28 * MINUTE, "amount": 64.0}
    send(producer, topic, value, t0 + 29 * MINUTE)
    producer.flush()
    producer.close()
    again = tmp_path / "again.parquet"
    rebuilt = rebuild(log, manifest_path(out), again, app=app)
    assert again.read_bytes() == out.read_bytes()
    assert sha256(again) == sha256(out) == manifest.sha256 == rebuilt.sha256
    assert rebuilt.sources == manifest.sources
    assert read_manifest(manifest_path(again)) == rebuilt
    fresh = tmp_path / "fresh.parquet"
    newer = build_dataset(log, app, spine, fresh)
    assert newer.sha256 != manifest.sha256
    assert newer.sources[0].partitions[0].end == manifest.sources[0].partitions[0].end + 1
    assert pq.read_table(fresh).column("clicks_1h").to_pylist()[0] == 3


def test_manifest_names_the_exact_ranges_and_counts(log, tmp_path):
    topic = unique("clicks")
    log.create_topic(topic, TopicConfig(partitions=3))
    t0 = hour_two_days_ago()
    producer = log.producer()
    for i in range(30):
        who = f"m{i % 4}"
        send(producer, topic, {"member_id": who, "at": t0 + i * MINUTE}, t0 + i * MINUTE, who)
    producer.flush()
    held = {p.partition: (p.start, p.end) for p in log.describe_topic(topic).partitions}
    spine = write_csv(tmp_path / "s.csv", [{"member_id": "m1", "at": t0 + HOUR}])
    out = tmp_path / "d" / "train.parquet"  # a folder that does not exist yet
    app = clicks_app(topic)
    manifest = build_dataset(log, app, spine, out, entity="member")
    send(producer, topic, {"member_id": "m1", "at": t0}, t0, "m1")
    producer.flush()
    producer.close()

    (source,) = manifest.sources
    assert source.topic == topic
    assert {p.partition: (p.start, p.end) for p in source.partitions} == held
    assert [p.records for p in source.partitions] == [e - s for s, e in held.values()]
    assert source.records == 30 and source.undecodable == 0
    assert manifest.app == "shop" and manifest.app_spec is None and manifest.entity == "member"
    assert manifest.fingerprint == app.features.fingerprint()
    assert manifest.spine.file == str(spine.resolve()) and manifest.spine.sha256 == sha256(spine)
    assert (manifest.spine.entity_column, manifest.spine.time_column) == ("member_id", "at")
    assert manifest.spine.topic is None and manifest.spine.rows == 1
    assert manifest.rows == 1 and manifest.output == "train.parquet"
    assert manifest.sha256 == sha256(out)
    assert read_manifest(manifest_path(out)) == manifest
    assert manifest_path(out).name == "train.parquet.manifest.json"


def rich_features(clicks: str, profiles: str) -> FeatureSet:
    per_member = Aggregations(
        clicks,
        member,
        [
            *Count.per_window("clicks", windows=["10m", "1h", "lifetime"]),
            *Count.per_window("big", windows=["1h"], where=lambda v: v["amount"] > 5),
            *Sum.per_window("spent", field="amount", windows=["10m", "24h"]),
            *Mean.per_window("avg", field="amount", windows=["1h"]),
            *Min.per_window("least", field="amount", windows=["1h"]),
            *Max.per_window("most", field="amount", windows=["lifetime"]),
            *Last.per_window("item", field="item"),
            *Distinct.per_window("items", field="item", windows=["24h"]),
        ],
        time="at",
        lateness="5m",
    )
    profile = Table(profiles, member, [TableFeature("country", "country", default="??")])
    per_click = Derived("per_click", ("spent_24h", "clicks_lifetime"), lambda s, n: s / n)
    return FeatureSet([per_member], tables=[profile], derived=[per_click])


def read_everything(log, topic: str) -> list[dict]:
    """Every record of `topic` as `events_table` takes it, read plainly (the oracle's input)."""
    ends = {p.partition: p.end for p in log.describe_topic(topic).partitions}
    consumer = log.consumer(None, [topic], reset="earliest")
    decode = SourceReader(None).decoder(topic)
    out = []
    deadline = time.monotonic() + 30
    while any(consumer.position(TopicPartition(topic, p)) < e for p, e in ends.items()):
        assert time.monotonic() < deadline
        for r in consumer.poll(max_records=1000, timeout=0.5):
            try:
                value = decode(r.value)
            except Exception:
                continue
            out.append(
                {
                    "partition": r.partition,
                    "offset": r.offset,
                    "arrival": r.timestamp,
                    "key": r.key,
                    "value": value,
                }
            )
    consumer.close()
    return out


def test_values_equal_build_on_the_same_records(log, tmp_path):
    clicks, profiles = unique("clicks"), unique("profiles")
    log.create_topic(clicks, TopicConfig(partitions=3))
    # a table topic keeps its history (decision 0008): compacted, the embedded log would drop
    # records as they are written, and the build would refuse the rows that needed them
    log.create_topic(profiles, TopicConfig(partitions=2))
    features = rich_features(clicks, profiles)
    rng = random.Random(7)
    t0 = hour_two_days_ago()
    producer = log.producer()
    arrival = t0
    for _ in range(300):  # arrivals rise; event times wander behind them, some late
        arrival += rng.randrange(0, 40_000)
        who = f"m{rng.randrange(6)}"
        value = {
            "member_id": who,
            "at": arrival - rng.choice([0, 0, 1000, 60_000, 400_000]),
            "amount": rng.choice([1.5, 2.25, 7.0, 10.0, None]),
            "item": f"i{rng.randrange(5)}",
        }
        send(producer, clicks, value, arrival, who)
        if rng.random() < 0.1:
            country = rng.choice(["nl", "de", None])
            profile = None if country is None else {"member_id": who, "country": country}
            send(producer, profiles, profile, arrival, who)
    send(producer, clicks, b"\xff broken", arrival)
    producer.flush()
    producer.close()
    spine_rows = [
        {"member_id": f"m{rng.randrange(7)}", "at": t0 + rng.randrange(0, arrival - t0 + HOUR)}
        for _ in range(60)
    ]
    spine = write_csv(tmp_path / "spine.csv", spine_rows)
    out = tmp_path / "train.parquet"
    manifest = build_dataset(log, App("shop", features=features), spine, out)

    sources = {t: events_table(features, t, read_everything(log, t)) for t in (clicks, profiles)}
    table = pa.table(
        {
            "entity": [r["member_id"] for r in spine_rows],
            "at": pa.array([r["at"] for r in spine_rows], pa.int64()),
        }
    )
    expected = build(features, sources, table)
    expected = expected.rename_columns(["member_id", *expected.column_names[1:]])
    assert pq.read_table(out).to_pylist() == expected.to_pylist()
    assert manifest.features == features.names()
    assert [s.topic for s in manifest.sources] == sorted([clicks, profiles])
    assert sum(s.undecodable for s in manifest.sources) == 1


def test_a_dataset_reads_exactly_its_pinned_ranges(log, backend, tmp_path):
    """However records are spread over partitions and however many arrive after the build
    starts, the dataset equals `build` over exactly the records before the pinned ends, and
    its rebuild after more appends is the same file."""

    @settings(
        max_examples=examples(backend, 25, 4),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        partitions=st.integers(1, 3),
        before=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 90)), max_size=40),
        after=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 90)), min_size=1, max_size=10),
        instants=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 120)), min_size=1),
    )
    def check(partitions, before, after, instants):
        topic = unique("clicks")
        log.create_topic(topic, TopicConfig(partitions=partitions))
        app, t0 = clicks_app(topic), hour_two_days_ago()
        producer = log.producer()

        def append(records):
            for who, minute in records:
                value = {"member_id": f"m{who}", "at": t0 + minute * MINUTE, "amount": 1.0}
                send(producer, topic, value, t0 + minute * MINUTE, key=f"m{who}")
            producer.flush()

        append(before)
        rows = [{"member_id": f"m{w}", "at": t0 + m * MINUTE} for w, m in instants]
        spine = write_csv(tmp_path / "spine.csv", rows)
        out, again = tmp_path / "a.parquet", tmp_path / "b.parquet"
        manifest = build_dataset(log, app, spine, out)
        append(after)
        rebuild(log, manifest_path(out), again, app=app)
        producer.close()

        ends = {p.partition: p.end for p in manifest.sources[0].partitions}
        assert sum(ends.values()) == len(before)
        known = [r for r in read_everything(log, topic) if r["offset"] < ends[r["partition"]]]
        table = pa.table({"entity": [r["member_id"] for r in rows], "at": [r["at"] for r in rows]})
        expected = build(app.features, {topic: events_table(app.features, topic, known)}, table)
        assert pq.read_table(out).to_pylist() == [
            {"member_id": r.pop("entity")} | r for r in expected.to_pylist()
        ]
        assert again.read_bytes() == out.read_bytes()

    check()


def test_spine_from_a_topic_is_pinned_and_rebuilt(log, tmp_path):
    topic, t0, _ = hand_made(log, tmp_path)
    labels = unique("labels")
    log.create_topic(labels, TopicConfig(partitions=1))
    producer = log.producer()
    for minute, who, label in [(40, "m1", 1), (55, None, 0), (40, "m2", 1)]:
        value = {"at": t0 + minute * MINUTE, "label": label}
        if who:
            value["member_id"] = who
        send(producer, labels, value, t0 + 60 * MINUTE, key="m1")  # no member_id: the key
    send(producer, labels, b"[]", t0 + 60 * MINUTE)
    producer.flush()
    app = clicks_app(topic)
    out = tmp_path / "train.parquet"
    manifest = build_dataset(log, app, labels, out)
    assert pq.read_table(out).to_pylist() == [
        {"at": t0 + 40 * MINUTE, "label": 1, "member_id": "m1", "clicks_1h": 3, "spent_1h": 7.0},
        {"at": t0 + 55 * MINUTE, "label": 0, "member_id": "m1", "clicks_1h": 4, "spent_1h": 23.0},
        {"at": t0 + 40 * MINUTE, "label": 1, "member_id": "m2", "clicks_1h": 1, "spent_1h": 32.0},
    ]
    spine = manifest.spine
    assert spine.file is None and spine.topic is not None and spine.topic.topic == labels
    assert [(p.start, p.end, p.records, p.undecodable) for p in spine.topic.partitions] == [
        (0, 4, 4, 1)
    ]
    assert [t.topic for t in manifest.topics] == [topic, labels]
    # more spine rows arrive; the rebuild reads the pinned ones only
    send(producer, labels, {"member_id": "m3", "at": t0, "label": 1}, t0 + 61 * MINUTE)
    producer.flush()
    producer.close()
    again = tmp_path / "again.parquet"
    rebuild(log, manifest_path(out), again, app=app)
    assert again.read_bytes() == out.read_bytes()


def test_a_spine_topic_without_time_fields_uses_the_log_timestamp(log, tmp_path):
    topic, t0, _ = hand_made(log, tmp_path)
    labels = unique("labels")
    log.create_topic(labels, TopicConfig(partitions=1))
    producer = log.producer()
    send(producer, labels, {"member_id": "m1", "label": 1}, t0 + 40 * MINUTE)
    producer.flush()
    producer.close()
    out = tmp_path / "train.parquet"
    manifest = build_dataset(log, clicks_app(topic), labels, out)
    assert manifest.spine.time_column == "timestamp"
    assert pq.read_table(out).to_pylist() == [
        {"member_id": "m1", "label": 1, "timestamp": t0 + 40 * MINUTE, "clicks_1h": 3}
        | {"spent_1h": 7.0}
    ]


def test_transactions_markers_and_open_transactions(log, backend, tmp_path):
    topic = unique("clicks")
    log.create_topic(topic, TopicConfig(partitions=1))
    t0 = hour_two_days_ago()
    producer = log.producer(transactional_id=unique("tx"))

    def transaction(minutes: list[int], commit: bool) -> None:
        producer.begin_transaction()
        for m in minutes:
            send(producer, topic, {"member_id": "m1", "at": t0 + m * MINUTE}, t0 + m * MINUTE)
        producer.flush()  # on the broker, inside the transaction
        if commit:
            producer.commit_transaction()

    transaction([1, 2], commit=True)
    transaction([3], commit=False)
    producer.abort_transaction()
    transaction([4], commit=True)
    transaction([5], commit=False)  # still open while the dataset is built: not waited for
    spine = write_csv(tmp_path / "s.csv", [{"member_id": "m1", "at": t0 + 30 * MINUTE}])
    out = tmp_path / "train.parquet"
    started = time.monotonic()
    manifest = build_dataset(log, clicks_app(topic), spine, out)
    assert time.monotonic() - started < 30
    producer.commit_transaction()
    producer.close()
    assert pq.read_table(out).column("clicks_1h").to_pylist() == [3]
    (p,) = manifest.sources[0].partitions
    assert p.records == 3
    # Kafka's transaction markers take offsets; the range ends before the transaction that
    # was open (at the last stable offset), which was neither read nor waited for.
    assert (p.start, p.end) == ((0, 7) if backend == "kafka" else (0, 3))
    assert log.describe_topic(topic).partitions[0].end > p.end
    again = tmp_path / "again.parquet"
    rebuild(log, manifest_path(out), again, app=clicks_app(topic))
    assert again.read_bytes() == out.read_bytes()


def test_rebuild_refuses_records_that_are_not_the_same(log, tmp_path):
    topic, _, spine = hand_made(log, tmp_path)
    app = clicks_app(topic)
    out = tmp_path / "train.parquet"
    manifest = build_dataset(log, app, spine, out)
    (source,) = manifest.sources
    (p,) = source.partitions
    altered = type(p)(p.partition, p.start, p.end, p.records, p.undecodable, "0" * 64)
    tampered = tmp_path / "tampered.manifest.json"
    changed = type(source)(source.topic, [altered])
    write_manifest(_replace(manifest, sources=[changed]), tampered)
    with pytest.raises(DatasetError, match=r"holds other records in offsets \[0, 7\)"):
        rebuild(log, tampered, tmp_path / "x.parquet", app=app)
    beyond = type(p)(p.partition, p.start, p.end + 5)
    write_manifest(_replace(manifest, sources=[type(source)(topic, [beyond])]), tampered)
    with pytest.raises(DatasetError, match="ends at offset 7, before the range's end 12"):
        rebuild(log, tampered, tmp_path / "x.parquet", app=app)

    # A manifest of format 1 digested its ranges another way: its record counts still compare.
    old_digest = type(p)(p.partition, p.start, p.end, p.records, p.undecodable, "1" * 64)
    write_manifest(
        _replace(manifest, sources=[type(source)(topic, [old_digest])], format=1), tampered
    )
    again = tmp_path / "again.parquet"
    rebuild(log, tampered, again, app=app)
    assert again.read_bytes() == out.read_bytes()
    fewer = type(p)(p.partition, p.start, p.end, p.records - 1, p.undecodable, "1" * 64)
    write_manifest(_replace(manifest, sources=[type(source)(topic, [fewer])], format=1), tampered)
    with pytest.raises(DatasetError, match="holds other records"):
        rebuild(log, tampered, tmp_path / "x.parquet", app=app)


def test_rebuild_refuses_changed_features_and_spine(log, tmp_path):
    topic, _, spine = hand_made(log, tmp_path)
    out = tmp_path / "train.parquet"
    build_dataset(log, clicks_app(topic), spine, out)
    other = App(
        "shop",
        features=FeatureSet([Aggregations(topic, member, Count.per_window("c", windows=["1h"]))]),
    )
    with pytest.raises(DatasetError, match="not the ones the dataset was built with"):
        rebuild(log, manifest_path(out), tmp_path / "x.parquet", app=other)
    with pytest.raises(DatasetError, match="module:attribute"):  # built from an App object
        application_spec(read_manifest(manifest_path(out)))
    spine.write_text(spine.read_text() + "m9,1700000000000,1\n")
    with pytest.raises(DatasetError, match="is not the one the dataset was built from"):
        rebuild(log, manifest_path(out), tmp_path / "x.parquet", app=clicks_app(topic))


def test_rebuild_after_retention_deleted_the_records_says_so(log, tmp_path):
    topic = unique("short")
    log.create_topic(topic, TopicConfig(retention_ms=4000, extra={"segment.ms": "100"}))
    now = int(time.time() * 1000)
    producer = log.producer()
    for i in range(5):
        send(producer, topic, {"member_id": "m1", "at": now - i}, now)
    producer.flush()
    spine = write_csv(tmp_path / "s.csv", [{"member_id": "m1", "at": now + 1}])
    out = tmp_path / "train.parquet"
    app = clicks_app(topic)
    build_dataset(log, app, spine, out)
    deadline = time.monotonic() + 90
    while log.describe_topic(topic).partitions[0].start < 5:
        assert time.monotonic() < deadline, "retention did not delete expired records"
        time.sleep(0.5)
        send(producer, topic, {"member_id": "m2", "at": now}, int(time.time() * 1000))
        producer.flush()
    producer.close()
    with pytest.raises(DatasetError, match="retention deleted records since they were pinned"):
        rebuild(log, manifest_path(out), tmp_path / "again.parquet", app=app)


def test_bad_spines_are_refused_before_any_topic_is_read(log, tmp_path):
    topic = unique("clicks")
    app = clicks_app(topic)  # the topic does not even exist: the spine is checked first
    cases = [
        ("user_id,at\nm1,1700000000000\n", "has no entity column: it needs a column 'entity' or"),
        ("member_id,when\nm1,1700000000000\n", "has no time column 'at' or 'timestamp'"),
        ("member_id,at\nm1,soon\n", "row 1: cannot read time column 'at' from 'soon'"),
        ("member_id,at\nm1,\n", "row 1: the time column 'at' is empty"),
    ]
    for text, message in cases:
        path = tmp_path / "spine.csv"
        path.write_text(text)
        with pytest.raises(DatasetError, match=message):
            build_dataset(log, app, path, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_spine_times_in_every_encoding(log, tmp_path):
    topic, t0, _ = hand_made(log, tmp_path)
    at = t0 + 40 * MINUTE
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1000))
    table = pa.table(
        {
            "entity": ["m1"] * 4,
            "when": [str(at), iso + "Z", iso + "+00:00", iso],
            "label": [1, 2, 3, 4],
        }
    )
    spine = tmp_path / "spine.jsonl"
    spine.write_text("\n".join(json.dumps(r) for r in table.to_pylist()) + "\n")
    out = tmp_path / "a.parquet"
    build_dataset(log, clicks_app(topic), spine, out, time_column="when")
    assert pq.read_table(out).column("when").to_pylist() == [at] * 4
    parquet = tmp_path / "spine.parquet"
    seconds = pa.array([at * 1000] * 4, pa.timestamp("us", "UTC"))
    pq.write_table(table.set_column(1, "when", seconds), parquet)
    build_dataset(log, clicks_app(topic), parquet, tmp_path / "b.parquet", time_column="when")
    assert pq.read_table(tmp_path / "b.parquet").column("clicks_1h").to_pylist() == [3] * 4


def _replace(manifest, **changes):
    import msgspec

    return msgspec.structs.replace(manifest, **changes)
