"""Arrow's column-wise decoding of plain JSON chunks gives the record-by-record events table.

`events_table_of_json` either answers with the very table that decoding each
value with msgspec and `events_table` gives, or declines (None); a topic's
chunk tables, concatenated by `concat_events`, are the table of all its
records at once, or the same kind of error.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.contracts.codecs import ContractViolation
from loopline.features import Aggregations, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Distinct, Last, Max, Mean, Sum
from loopline.features.offline.columnar import concat_events, events_table_of_json
from loopline.features.offline.events import SourceLayout, events_table
from loopline.features.sources import SourceReader

member = Entity("member", key="member_id")
SOURCE = "events"


def feature_sets() -> list[FeatureSet]:
    plain = Aggregations(
        SOURCE,
        member,
        [
            *Count.per_window("n", windows=["1h"]),
            *Sum.per_window("total", field="amount", windows=["1h"]),
            *Mean.per_window("mean", field="amount", windows=["24h"]),
            *Max.per_window("top", field="tag", windows=["1h"]),
            *Last.per_window("last", field="tag", windows=["1h"]),
            *Distinct.per_window("kinds", field="tag", windows=["1h"]),
        ],
        time="at",
    )
    by_arrival = Aggregations(SOURCE, member, Count.per_window("arrived", windows=["1h"]))
    other_key = Aggregations(
        SOURCE, Entity("other", key="other"), Count.per_window("o", windows=["1h"]), time="at"
    )
    table = Table(SOURCE, member, [TableFeature("country", "tag", default="??")])
    return [
        FeatureSet([plain]),
        FeatureSet([by_arrival]),
        FeatureSet([plain, other_key]),
        FeatureSet([plain, by_arrival], tables=[table]),
    ]


FEATURE_SETS = feature_sets()
ids = st.one_of(
    st.sampled_from(["m1", "m2", "", "7", "2024-05-01"]),
    st.integers(-(2**70), 2**70),
    st.floats(-3, 3),
    st.booleans(),
    st.none(),
)
times = st.one_of(
    st.integers(1_600_000_000_000, 1_800_000_000_000),
    st.integers(1_600_000_000, 1_800_000_000),
    st.integers(-(2**66), 2**66),
    st.floats(1.6e9, 1.8e9),
    st.sampled_from(["2024-05-01T10:00:00Z", "yesterday"]),
    st.none(),
)
amounts = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**66), 2**66),
    st.floats(-10, 10),
    st.none(),
    st.text(max_size=2),
    st.booleans(),
)
tags = st.one_of(st.text(max_size=3), st.none(), st.integers(0, 3), st.sampled_from(["2024-05-01"]))


def objects(uniform: bool):
    if uniform:
        return st.fixed_dictionaries(
            {
                "member_id": st.sampled_from(["m1", "m2", "m3"]) | st.integers(0, 9),
                "other": st.integers(0, 5),
                "at": st.integers(1_600_000_000_000, 1_800_000_000_000),
                "amount": st.floats(-10, 10) | st.integers(-5, 5),
                "tag": st.text(max_size=3),
            }
        )
    fields = {"member_id": ids, "other": ids, "at": times, "amount": amounts, "tag": tags}
    return st.fixed_dictionaries({}, optional=fields)


odd = st.sampled_from(
    [
        b"",
        b"[1]",
        b"3",
        b"null",
        b'{"a":1}{"b":2}',
        b'{"a":1} {"b":2}',
        b'{"a": 1}\n',
        b'{"a": 1}\r',
        b'{"a": 1, "a": 2}',
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": 99999999999999999999}',
        b'{"tag": "\xff"}',
        b'{"n": {"x": 1}}',
        b" {}",
    ]
)


@st.composite
def chunks(draw):
    uniform = draw(st.booleans())
    value = objects(uniform).map(lambda v: json.dumps(v, separators=(",", ":")).encode())
    if not uniform:
        value = value | odd
    return draw(st.lists(st.tuples(st.sampled_from([b"k1", b"7", b""]), value), max_size=12))


def reference(features: FeatureSet, partition: int, first: int, chunk) -> list[dict] | None:
    """The records as the record-by-record path decodes them; None if one is refused."""
    decode = SourceReader(None).decoder(SOURCE)
    records = []
    for i, (key, value) in enumerate(chunk):
        try:
            decoded = decode(value)
        except ContractViolation:
            return None
        records.append(
            {"partition": partition, "offset": first + i, "arrival": 1_700_000_000_000 + i}
            | {"key": key, "value": decoded}
        )
    return records


def outcome(make):
    try:
        return "table", make()
    except Exception as error:
        return "error", type(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk=chunks(), which=st.integers(0, len(FEATURE_SETS) - 1))
def test_arrow_answers_with_the_record_by_record_table_or_declines(chunk, which):
    features = FEATURE_SETS[which]
    layout = SourceLayout.of(features, SOURCE)
    keys, values = [k for k, _ in chunk], [v for _, v in chunk]
    arrivals = [1_700_000_000_000 + i for i in range(len(chunk))]
    fast = events_table_of_json(layout, 2, list(range(len(chunk))), arrivals, keys, values)
    if fast is None:
        return
    records = reference(features, 2, 0, chunk)
    assert records is not None, "Arrow read a value msgspec refuses"
    slow = outcome(lambda: events_table(features, SOURCE, records))
    assert slow[0] == "table", slow
    assert fast.schema.equals(slow[1].schema), (fast.schema, slow[1].schema)
    assert fast.equals(slow[1])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(chunks(), min_size=1, max_size=4), which=st.integers(0, 3))
def test_chunk_tables_concatenate_to_the_table_of_all_records(parts, which):
    features = FEATURE_SETS[which]
    layout = SourceLayout.of(features, SOURCE)
    tables, records, first = [], [], 0
    for chunk in parts:
        decoded = reference(features, 0, first, chunk)
        if decoded is None or not chunk:
            return
        keys, values = [k for k, _ in chunk], [v for _, v in chunk]
        arrivals = [1_700_000_000_000 + i for i in range(len(chunk))]
        offsets = list(range(first, first + len(chunk)))
        fast = events_table_of_json(layout, 0, offsets, arrivals, keys, values)
        slow = outcome(lambda d=decoded: events_table(features, SOURCE, d))
        if slow[0] == "error":
            return  # one chunk the builder refuses: tested above
        tables.append(slow[1] if fast is None else fast)
        records += decoded
        first += len(chunk)
    whole = outcome(lambda: events_table(features, SOURCE, records))
    joined = outcome(lambda: concat_events(SOURCE, tables))
    assert joined[0] == whole[0], (joined, whole)
    if whole[0] == "error":
        assert joined[1] is whole[1]
    else:
        assert joined[1].schema.equals(whole[1].schema), (joined[1].schema, whole[1].schema)
        assert joined[1].equals(whole[1])


def test_a_chunk_of_plain_events_takes_the_columnar_way_and_agrees():
    features = FEATURE_SETS[3]
    chunk = [
        (
            b"k",
            b'{"member_id":"m%d","other":%d,"at":%d,"amount":%r,"tag":"t"}'
            % (i % 7, i % 3, 1_700_000_000_000 + i, i * 0.5),
        )
        for i in range(1000)
    ]
    layout = SourceLayout.of(features, SOURCE)
    arrivals = [1_700_000_000_000 + i for i in range(1000)]
    fast = events_table_of_json(
        layout, 2, list(range(1000)), arrivals, [k for k, _ in chunk], [v for _, v in chunk]
    )
    assert fast is not None
    assert fast.equals(events_table(features, SOURCE, reference(features, 2, 0, chunk)))
