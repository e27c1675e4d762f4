"""Feature vectors of a whole FeatureSet: routing, defaults, derived features, errors."""

from __future__ import annotations

import datetime
import json

import pytest

from loopline.features import (
    Aggregations,
    DeclarationError,
    Derived,
    Entity,
    FeatureSet,
    Table,
    TableFeature,
)
from loopline.features.aggregations import Count, Sum
from loopline.features.online import OnlineFeatures, UnreadableRecord
from loopline.features.online.times import event_time_ms

MINUTE, HOUR = 60_000, 3_600_000
T0 = event_time_ms("2024-05-01T10:00:00Z")
member, item = Entity("member", "member_id"), Entity("item", "item_id")
ORDERS = Aggregations(
    "orders",
    member,
    [
        *Count.per_window("orders", windows=["1h", "lifetime"]),
        *Sum.per_window("spent", field="amount", windows=["1h"]),
    ],
    time="at",
    lateness="5m",
)
SOLD = Aggregations(
    "orders", item, Count.per_window("sold", windows=["24h"]), time="at", lateness="5m"
)
PROFILES = Table("profiles", member, [TableFeature("country", "country", default="??")])
PER_ORDER = Derived("per_order", ("spent_1h", "orders_1h"), lambda s, n: s / n, default=0.0)
DOUBLE = Derived("double_per_order", ("per_order",), lambda x: 2 * x)
LOCAL = Derived("is_local", ("country",), lambda c: c == "PT", default=False)
FEATURES = FeatureSet(
    [ORDERS, SOLD], tables=[PROFILES], derived=[DOUBLE, PER_ORDER, LOCAL]
)  # DOUBLE is declared before what it reads


def order(offset: int, at: object, amount: float, who: str = "m1", what: str = "i1") -> dict:
    return {"member_id": who, "item_id": what, "at": at, "amount": amount}


def fed() -> OnlineFeatures:
    online = OnlineFeatures(FEATURES)
    online.process("profiles", 0, 0, T0, "m1", {"member_id": "m1", "country": "PT"})
    online.process("orders", 0, 0, T0, None, order(0, T0, 10.0))
    online.process("orders", 0, 1, T0 + 1, None, order(1, T0 + 1, 30.0, what="i2"))
    return online


def test_a_vector_holds_every_feature_of_the_entity_with_derived_ones_last() -> None:
    online = fed()
    assert online.vector("member", "m1", at=T0 + MINUTE) == {
        "orders_1h": 2,
        "orders_lifetime": 2,
        "spent_1h": 40.0,
        "country": "PT",
        "double_per_order": 40.0,
        "per_order": 20.0,
        "is_local": True,
    }
    assert online.vector("item", "i2", at=T0 + MINUTE) == {"sold_24h": 1}


def test_chosen_names_come_back_in_that_order_with_what_they_need_computed() -> None:
    online = fed()
    assert online.vector("member", "m1", ["double_per_order", "orders_1h"], T0 + MINUTE) == {
        "double_per_order": 40.0,
        "orders_1h": 2,
    }


def test_an_entity_never_seen_or_gone_reads_as_defaults_but_keeps_lifetime_values() -> None:
    online = fed()
    assert online.vector("member", "nobody", at=T0 + MINUTE) == {
        "orders_1h": 0,
        "orders_lifetime": 0,
        "spent_1h": 0.0,
        "country": "??",
        "double_per_order": 0.0,
        "per_order": 0.0,
        "is_local": False,
    }
    later = T0 + 25 * HOUR
    online.prune(later)
    assert online.entities("member") == 1  # kept for its lifetime count
    assert online.entities("item") == 0  # nothing left in any window: forgotten
    assert online.vector("member", "m1", ["orders_1h", "orders_lifetime"], later) == {
        "orders_1h": 0,
        "orders_lifetime": 2,
    }


def test_a_derived_feature_that_raises_takes_its_default_and_is_counted() -> None:
    online = fed()
    assert online.vector("member", "m1", ["per_order"], T0 + 2 * HOUR) == {"per_order": 0.0}
    assert online.derived_errors == 1
    # What reads a failed derived feature gets its default: 2 * 0.0.
    assert online.vector("member", "m1", ["double_per_order"], T0 + 2 * HOUR) == {
        "double_per_order": 0.0
    }


def test_late_records_are_dropped_and_counted() -> None:
    online = fed()
    assert online.process("orders", 0, 2, T0 + 2, None, order(2, T0 - 6 * MINUTE, 5.0))
    assert not online.process("orders", 0, 3, T0 + 3, None, order(3, T0 + 1 - 5 * MINUTE, 7.0))
    assert online.late_records == 2  # once per aggregation of the topic
    assert online.vector("member", "m1", ["spent_1h"], T0 + MINUTE) == {"spent_1h": 47.0}


def test_event_times_may_be_datetimes_iso_strings_or_epoch_numbers() -> None:
    at = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.UTC)
    spellings = [at, at.replace(tzinfo=None), "2024-05-01T10:00:00Z", "2024-05-01T12:00+02:00"]
    spellings += [T0, T0 / 1000, T0 // 1000]
    online = OnlineFeatures(FEATURES)
    for offset, spelling in enumerate(spellings):
        online.process("orders", 0, offset, T0, None, order(offset, spelling, 1.0))
    assert online.late_records == 0
    assert online.vector("member", "m1", ["orders_1h"], T0) == {"orders_1h": 0}
    assert online.vector("member", "m1", ["orders_1h"], T0 + 1) == {"orders_1h": len(spellings)}


def test_unreadable_records_change_nothing_and_say_why() -> None:
    online = fed()
    before = json.dumps(online.dump(), sort_keys=True)
    with pytest.raises(UnreadableRecord, match=r"orders\[0\]@7: time field 'at'"):
        online.process("orders", 0, 7, T0 + 9, None, order(7, "soon", 1.0))
    with pytest.raises(UnreadableRecord, match="no 'item_id' field and no log key"):
        online.process("orders", 0, 8, T0 + 9, None, {"member_id": "m1", "at": T0, "amount": 1})
    with pytest.raises(DeclarationError, match="no aggregations or tables are declared on"):
        online.process("clicks", 0, 0, T0 + 9, "m1", {})
    assert json.dumps(online.dump(), sort_keys=True) == before


def test_entity_ids_come_from_the_key_field_as_strings_else_from_the_log_key() -> None:
    online = OnlineFeatures(FEATURES)
    online.process("orders", 0, 0, T0, "ignored", {"member_id": 42, "item_id": 7, "at": T0})
    online.process("profiles", 0, 0, T0, "m9", {"country": "FR"})
    assert online.vector("member", "42", ["orders_lifetime"], T0 + 1) == {"orders_lifetime": 1}
    assert online.vector("member", "m9", ["country"], T0 + 1) == {"country": "FR"}
    online.process("orders", 0, 1, T0, "m9", None)  # a tombstone is no event
    assert online.vector("member", "m9", ["orders_lifetime"], T0 + 1) == {"orders_lifetime": 0}


def test_asking_for_what_is_not_there_is_an_error_that_names_it() -> None:
    online = fed()
    with pytest.raises(DeclarationError, match="'sold_24h' are not features of entity 'member'"):
        online.vector("member", "m1", ["sold_24h"], T0)
    with pytest.raises(DeclarationError, match="no feature named 'nope'"):
        online.vector("member", "m1", ["nope"], T0)
    with pytest.raises(DeclarationError, match="entities are item, member"):
        online.vector("session", "s1", None, T0)


def test_derived_features_in_a_cycle_are_refused() -> None:
    a = Derived("a", ("b",), lambda b: b)
    b = Derived("b", ("a",), lambda a: a)
    with pytest.raises(DeclarationError, match="cycle: a -> b -> a"):
        OnlineFeatures(FeatureSet([ORDERS], derived=[a, b]))


def test_state_is_refused_by_other_declarations() -> None:
    state = fed().dump()
    assert OnlineFeatures.load(FEATURES, state).vector("member", "m1", at=T0 + 2)["orders_1h"] == 2
    with pytest.raises(DeclarationError, match="recompute it from the log"):
        OnlineFeatures.load(FeatureSet([ORDERS]), state)
