"""The dataset builder's columnar fast path reads records exactly as the record-by-record path.

The decode hook (a chunk of records at once) must give the decoded records and
the count of refused ones that decoding each record on its own gives, reading
the log the counts and digests of the plain reference, and
`events_table_of_columns` the very table `events_table` gives, or the same error.
How the reader files polled records (again, out of range) is tested in
tests/stream/test_ranges.py.
"""

from __future__ import annotations

import datetime
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.contracts.codecs import ContractViolation
from loopline.features import Aggregations, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Last, Sum
from loopline.features.offline.events import EventColumns, events_table, events_table_of_columns
from loopline.features.offline.manifests import PartitionRange, TopicRange
from loopline.features.offline.pinned import decoder, pin, read_pinned
from loopline.features.sources import SourceReader
from loopline.log import Record
from support import range_digest

member = Entity("member", key="member_id")
SOURCE = "events"


def positive(v):
    return v["amount"] > 0


def feature_sets() -> list[FeatureSet]:
    plain = Aggregations(
        SOURCE,
        member,
        [
            *Count.per_window("n", windows=["1h"]),
            *Sum.per_window("total", field="amount", windows=["1h"]),
            *Last.per_window("tag", field="tag", windows=["1h"]),
        ],
        time="at",
    )
    by_arrival = Aggregations(SOURCE, member, Count.per_window("arrived", windows=["1h"]))
    filtered = Aggregations(
        SOURCE,
        member,
        Count.per_window("big", windows=["1h", "24h"], where=positive),
        time="at",
        key="other",
    )
    seconds = Aggregations(SOURCE, member, Count.per_window("late", windows=["1h"]), time="when")
    table = Table(SOURCE, member, [TableFeature("country", "tag", default="??")])
    return [
        FeatureSet([plain]),
        FeatureSet([by_arrival]),
        FeatureSet([plain, filtered]),
        FeatureSet([plain, seconds, by_arrival], tables=[table]),
        FeatureSet([], tables=[table]),
    ]


FEATURE_SETS = feature_sets()

ids = st.one_of(
    st.sampled_from(["m1", "m2", "", "7"]),
    st.text(max_size=3),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 3),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
isos = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.one_of(st.none(), st.just(datetime.UTC)),
).map(datetime.datetime.isoformat)
times = st.one_of(
    st.integers(-(10**11) - 2, 10**11 + 2),
    st.integers(1_600_000_000_000, 1_800_000_000_000),
    st.integers(1_600_000_000, 1_800_000_000),
    st.integers(-(2**64), 2**64),
    st.sampled_from([10**11, -(10**11), 10**11 - 1, 2**63 - 1, -(2**63), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(1.6e9, 1.8e9),
    st.floats(1.6e12, 1.8e12),
    st.sampled_from([0.0005, 0.0015, -0.0005, 1e11, 9.2e18, 9.3e18, 2.0**63, -0.0, 0.5]),
    isos,
    st.sampled_from(["yesterday", "", "2024-05-01", "2024-05-01T10:00:00+02:00"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=1),
)
amounts = st.one_of(
    st.integers(-5, 5), st.floats(-10, 10), st.none(), st.text(max_size=2), st.booleans()
)
tags = st.one_of(st.text(max_size=3), st.none(), st.integers(0, 3))


def values(uniform: bool):
    """Decoded values: all fields of one type each when `uniform` (the vectorised case)."""
    if uniform:
        fields = {
            "member_id": st.sampled_from(["m1", "m2", "m3"]),
            "other": st.integers(0, 5),
            "at": st.integers(1_600_000_000_000, 1_800_000_000_000),
            "when": st.floats(1.6e9, 1.8e9),
            "amount": st.floats(-10, 10),
            "tag": st.text(max_size=3),
        }
        return st.fixed_dictionaries(fields)
    fields = {
        "member_id": ids,
        "other": ids,
        "at": times,
        "when": times,
        "amount": amounts,
        "tag": tags,
    }
    return st.fixed_dictionaries({}, optional=fields)


keys = st.one_of(st.none(), st.sampled_from([b"", b"k1", b"7"]), st.binary(max_size=3))


@st.composite
def record_lists(draw):
    uniform = draw(st.booleans())
    value = values(uniform)
    if not uniform or draw(st.booleans()):
        value = st.one_of(st.none(), value)  # tombstones
    rows = draw(
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2**40), keys, value), max_size=30)
    )
    return [
        {"partition": p, "offset": i, "arrival": a, "key": k, "value": v}
        for i, (p, a, k, v) in enumerate(rows)
    ]


def outcome(make):
    try:
        return "table", make()
    except Exception as error:  # the same error, said the same way, is the same result
        return "error", (type(error), str(error))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=record_lists(), which=st.integers(0, len(FEATURE_SETS) - 1))
def test_columnar_events_table_is_the_record_by_record_one(records, which):
    features = FEATURE_SETS[which]
    slow = outcome(lambda: events_table(features, SOURCE, records))
    fast = outcome(lambda: events_table_of_columns(features, SOURCE, EventColumns.of(records)))
    assert fast[0] == slow[0], (fast, slow)
    if slow[0] == "error":
        assert fast[1] == slow[1]
    else:
        assert fast[1].schema.equals(slow[1].schema), (fast[1].schema, slow[1].schema)
        assert fast[1].to_pylist() == slow[1].to_pylist()
        assert fast[1].equals(slow[1])


def test_uniform_numbers_take_the_columnar_way_and_agree():
    features = FEATURE_SETS[3]
    records = [
        {
            "partition": i % 3,
            "offset": i,
            "arrival": 1_700_000_000_000 + i,
            "key": b"k",
            "value": {
                "member_id": f"m{i % 7}",
                "at": 1_700_000_000 + i if i % 2 else 1_700_000_000_000 + i,
                "when": 1_700_000_000.0005 + i,
                "amount": i * 0.5,
                "tag": "t",
            },
        }
        for i in range(1000)
    ]
    fast = events_table_of_columns(features, SOURCE, EventColumns.of(records))
    assert fast.equals(events_table(features, SOURCE, records))


# -- reading the log in batches ----------------------------------------------------------

json_values = st.one_of(
    values(False).map(lambda v: json.dumps(v).encode()),
    values(True).map(lambda v: json.dumps(v, separators=(",", ":")).encode()),
    st.sampled_from(
        [
            b"",
            b" ",
            b"{",
            b"[1]",
            b"3",
            b'"s"',
            b"null",
            b"NaN",
            b'{"a":1}{"b":2}',
            b'{"a":1},{"b":2}',
            b'{"a":"},',
            b'{"}',
            b'{"a": 1}\n',
            b'\n{"a": [1,\n 2]}',
            b'{"a": 1, "a": 2}',
            b"\xff",
        ]
    ),
    st.binary(max_size=8),
    st.none(),
)


def contract_decoder(value):
    """A decoder other than plain JSON (as for a topic bound to a contract)."""
    fields = SourceReader(None).fields("t", value)
    if fields is not None and "amount" in fields:
        raise ContractViolation("no amounts here")
    return fields


def one_by_one(records, decode) -> tuple[list[dict], int]:
    """The reference: each record decoded on its own, those refused counted."""
    out, refused = [], 0
    for r in records:
        try:
            value = decode(r.value)
        except ContractViolation:
            refused += 1
            continue
        out.append(
            {"partition": r.partition, "offset": r.offset, "arrival": r.timestamp, "key": r.key}
            | {"value": value}
        )
    return out, refused


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.tuples(keys, json_values), max_size=40), plain=st.booleans())
def test_the_columnar_decode_hook_decodes_as_one_by_one(values, plain):
    records = [
        Record("t", 1, 5 + i, 1_700_000_000_000 + i, k, v) for i, (k, v) in enumerate(values)
    ]
    decode = SourceReader(None).decoder("t") if plain else contract_decoder
    columns, refused = decoder(decode)(1, records)
    assert (columns.records(), refused) == one_by_one(records, decode)


def test_read_pinned_reads_the_log_as_record_by_record(log, new_topic, backend):
    topic = new_topic(partitions=3)
    producer = log.producer()
    sent = [
        b'{"member_id": "m1", "at": 1700000000}',
        None,
        b"[1]",
        b"not json",
        b'{"member_id": 7, "at": "2023-11-14T22:13:20Z", "amount": 1.5}',
        b'{"a":1}{"b":2}',
        b"",
    ] * 40
    for i, value in enumerate(sent):
        producer.send(
            topic, value, b"k%d" % (i % 5), partition=i % 3, timestamp=1_700_000_000_000 + i
        )
    producer.flush()
    producer.close()
    ranges = pin(log, topic)
    decode = SourceReader(None).decoder(topic)
    read = read_pinned(log, topic, ranges, decode)
    consumer = log.consumer(None, [topic], reset="earliest", read_committed=True)
    try:
        records = []
        while len(records) < len(sent):
            records += consumer.poll(max_records=7, timeout=1.0)
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    expected, ranges_read = [], []
    for p in ranges.partitions:
        mine = [r for r in records if r.partition == p.partition]
        decoded, refused = one_by_one(mine, decode)
        expected += decoded
        ranges_read.append(
            PartitionRange(p.partition, p.start, p.end, len(mine), refused, range_digest(mine))
        )
    assert read.ranges == TopicRange(topic, ranges_read)
    assert read.records == expected
    assert (
        sum(p.undecodable for p in read.ranges.partitions) == 4 * 40
    )  # [1], not json, two objects, empty
