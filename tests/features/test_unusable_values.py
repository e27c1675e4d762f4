"""Values a feature cannot use: dead-lettered online, left out offline, counted both ways.

One rule for both (docs/decisions/0008): sum, mean, min and max read numbers
(int or float; a numeric string such as "5.5" or a bool is not one), distinct
reads scalars. A record with a value a feature reads and cannot use changes
nothing online and goes to ``<source>.dlq`` with the reason; the dataset
builder leaves the same record out and counts it in the manifest. A value
that a feature's ``where`` filter keeps away from it is never read.
"""

from __future__ import annotations

import json
import math
import time

import msgspec
import pyarrow.parquet as pq
import pytest

from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Distinct, Max, Sum
from loopline.features.offline import events_table
from loopline.features.offline.datasets import build_dataset
from loopline.features.offline.events import unusable_records
from loopline.features.online import OnlineFeatures, UnreadableRecord
from loopline.features.processor import FeatureProcessor
from loopline.features.store import FeatureStore
from loopline.log import TopicConfig
from loopline.stream.deadletters import REASON
from support import consume_all, unique

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
member = Entity("member", key="member_id")


def _features(source: str) -> FeatureSet:
    return FeatureSet(
        [
            Aggregations(
                source,
                member,
                [
                    *Count.per_window("clicks", windows=["1h"]),
                    *Sum.per_window("spent", field="amount", windows=["1h"]),
                ],
                time="at",
                lateness="15m",
            )
        ]
    )


def _poison(t0: int) -> list[dict]:
    """Two good records of m1 around two unusable ones (m2's "abc", m1's "5.5")."""
    return [
        {"member_id": "m1", "at": t0 + 1 * MINUTE, "amount": 1.0},
        {"member_id": "m2", "at": t0 + 2 * MINUTE, "amount": "abc"},
        {"member_id": "m1", "at": t0 + 3 * MINUTE, "amount": "5.5"},
        {"member_id": "m1", "at": t0 + 4 * MINUTE, "amount": 2},
    ]


def _produce(log, topic: str, values: list[dict]) -> None:
    producer = log.producer()
    for value in values:
        producer.send(
            topic, msgspec.json.encode(value), value["member_id"].encode(), timestamp=value["at"]
        )
    producer.flush()
    producer.close()


def test_a_poison_pill_is_dead_lettered_and_features_run_goes_on(log):
    source = unique("orders")
    log.create_topic(source, TopicConfig(partitions=1))
    app = App(unique("shop"), features=_features(source))
    t0 = (time.time_ns() // 1_000_000 // HOUR - 1) * HOUR
    _produce(log, source, _poison(t0))

    processor = FeatureProcessor(log, app)
    stats = processor.run_until_caught_up()
    processor.close()
    assert (stats.records, stats.dead_letters) == (4, 2)
    dead = consume_all(log.consumer(None, [f"{source}.dlq"], reset="earliest"), 2, timeout=10)
    reasons = sorted(dict(d.headers)[REASON].decode() for d in dead)
    assert len(reasons) == 2
    assert all("'spent_1h' (sum of 'amount') reads a number" in r for r in reasons)
    assert "not 'abc' (str)" in reasons[0] and "not '5.5' (str)" in reasons[1]

    # a restart reads on from the commit: nothing wedges, nothing is counted twice
    _produce(log, source, [{"member_id": "m2", "at": t0 + 5 * MINUTE, "amount": 4.5}])
    processor = FeatureProcessor(log, app)
    stats = processor.run_until_caught_up()
    processor.close()
    assert (stats.records, stats.dead_letters) == (1, 0)
    with FeatureStore(log, app) as store:
        store.catch_up()
        at = t0 + 10 * MINUTE
        assert store.vector("member", "m1", at=at) == {"clicks_1h": 2, "spent_1h": 3.0}
        assert store.vector("member", "m2", at=at) == {"clicks_1h": 1, "spent_1h": 4.5}


def test_the_dataset_leaves_out_the_records_online_dead_letters(log, tmp_path):
    source = unique("orders")
    log.create_topic(source, TopicConfig(partitions=1))
    t0 = (time.time_ns() // 1_000_000 - 2 * DAY) // HOUR * HOUR
    _produce(log, source, _poison(t0))
    spine = tmp_path / "spine.csv"
    at = t0 + 10 * MINUTE
    spine.write_text(f"member_id,at\nm1,{at}\nm2,{at}\n")
    app = App("shop", features=_features(source))
    manifest = build_dataset(log, app, spine, tmp_path / "train.parquet")
    rows = pq.read_table(tmp_path / "train.parquet").to_pylist()
    assert rows == [
        {"member_id": "m1", "at": at, "clicks_1h": 2, "spent_1h": 3.0},
        {"member_id": "m2", "at": at, "clicks_1h": 0, "spent_1h": 0.0},
    ]
    assert manifest.unusable == {source: 2}


# -- the rule, without a log ---------------------------------------------------------------


def _mixed() -> FeatureSet:
    """Sums and maxima of `amount`, distinct `tag`s, and a table on the same topic."""
    events = Aggregations(
        "ev",
        member,
        [
            *Count.per_window("n", windows=["lifetime"]),
            *Sum.per_window("spent", field="amount", windows=["1h"]),
            *Max.per_window("top", field="amount", windows=["lifetime"]),
            *Distinct.per_window("tags", field="tag", windows=["lifetime"]),
            *Sum.per_window(
                "big",
                field="big",
                windows=["lifetime"],
                where=lambda v: isinstance(v.get("big"), int | float),
            ),
        ],
        time="at",
    )
    latest = Table("ev", member, [TableFeature("last_tag", "tag")])
    return FeatureSet([events], tables=[latest])


T0 = 1_700_000_000_000  # epoch ms
GOOD = {"member_id": "m1", "at": T0, "amount": 2.5, "tag": "a", "big": "n/a"}
UNUSABLE = [
    ("amount", "5.5"),  # a numeric string is not a number
    ("amount", "abc"),
    ("amount", True),  # nor is a bool
    ("amount", [1]),
    ("amount", {"v": 1}),
    ("tag", ["a", "b"]),  # distinct needs a scalar
    ("tag", {"k": "v"}),
]


@pytest.mark.parametrize(("field", "value"), UNUSABLE)
def test_an_unusable_value_changes_nothing_online(field, value):
    online = OnlineFeatures(_mixed())
    online.process("ev", 0, 0, T0, "m1", GOOD)
    online.take_changes()
    before = online.dump()
    with pytest.raises(UnreadableRecord) as error:
        online.process("ev", 0, 1, T0 + 2_000, "m1", {**GOOD, "at": T0 + 1_500, field: value})
    assert repr(value) in str(error.value) and repr(field) in str(error.value)
    assert online.dump() == before and online.take_changes() == []
    assert online.vector("member", "m1", at=T0 + 3_000) == {
        "n_lifetime": 1,
        "spent_1h": 2.5,
        "top_lifetime": 2.5,
        "tags_lifetime": 1,
        "big_lifetime": 0.0,
        "last_tag": "a",
    }


@pytest.mark.parametrize(("field", "value"), UNUSABLE)
def test_offline_leaves_out_the_same_records_and_counts_them(field, value):
    records = [
        {"partition": 0, "offset": 0, "arrival": T0, "value": GOOD},
        {"partition": 0, "offset": 1, "arrival": T0 + 2_000, "value": {**GOOD, field: value}},
        {"partition": 0, "offset": 2, "arrival": T0 + 2_500, "value": {**GOOD, "amount": 4}},
    ]
    table = events_table(_mixed(), "ev", records)
    assert table.column("offset").to_pylist() == [0, 2]
    assert unusable_records(table) == 1


def test_a_value_kept_away_by_a_filter_is_not_read():
    features = _mixed()
    online = OnlineFeatures(features)
    value = {**GOOD, "big": "lots"}  # `big` is summed only where it is a number
    assert online.process("ev", 0, 0, T0, "m1", value) is False
    table = events_table(
        features, "ev", [{"partition": 0, "offset": 0, "arrival": T0, "value": value}]
    )
    assert table.num_rows == 1 and unusable_records(table) == 0


def test_integers_and_floats_mix_in_one_field():
    online = OnlineFeatures(_mixed())
    for i, amount in enumerate([1, 2.5, 10**20]):
        online.process("ev", 0, i, T0 + i, "m1", {**GOOD, "amount": amount})
    assert online.vector("member", "m1", at=T0 + 5_000)["spent_1h"] == math.fsum([1, 2.5, 1e20])
    json.dumps(online.dump())  # the changelog can still write it
