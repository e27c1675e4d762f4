"""Reading pinned ranges: every record of a range once, in order, counted and digested the same
however the consumer delivered them; the same reader for datasets and labelled examples."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.log import Record
from loopline.stream.ranges import PartitionRange, RangeError, _Partition, pin, read_ranges
from support import range_digest

blobs = st.one_of(st.none(), st.binary(max_size=6))


@st.composite
def polls(draw):
    """Records of partition 1 as a consumer may deliver them: again, out of the range."""
    offsets = draw(st.lists(st.integers(0, 40), max_size=60))
    if draw(st.booleans()):
        offsets = sorted(set(offsets))
    records = [
        Record("t", 1, offset, draw(st.integers(-(2**40), 2**40)), draw(blobs), draw(blobs))
        for offset in offsets
    ]
    cuts = sorted(draw(st.lists(st.integers(0, len(records)), max_size=4)))
    bounds = [0, *cuts, len(records)]
    batches = [records[i:j] for i, j in pairwise(bounds) if i < j]
    start = draw(st.integers(0, 10))
    return batches, PartitionRange(1, start, start + draw(st.integers(0, 40)))


def handed(record_lists) -> list:
    return [r for records in record_lists for r in records]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(read=polls(), size=st.integers(1, 8))
def test_each_record_of_the_range_is_handed_once_in_order_and_digested(read, size):
    batches, pinned = read
    expected, last = [], pinned.start - 1
    for record in handed(batches):  # the reference: first delivery, within the range, in order
        if last < record.offset < pinned.end:
            expected.append(record)
            last = record.offset

    def parse(partition, records):
        assert partition == 1 and records
        return records, sum(r.value is None for r in records)

    with ThreadPoolExecutor(1) as pool:
        part = _Partition(pinned, pool, parse, size)
        for batch in batches:
            part.add(batch)
        part.flush()
        results = [f.result() for f in part.chunks]
    assert handed(made for made, _ in results) == expected
    refused = sum(n for _, n in results)
    assert part.range(refused) == PartitionRange(
        1,
        pinned.start,
        pinned.end,
        records=len(expected),
        undecodable=sum(r.value is None for r in expected),
        sha256=range_digest(expected),
    )


def test_read_ranges_reads_exactly_the_pinned_ranges(log, new_topic):
    topic = new_topic(partitions=2)
    producer = log.producer()
    for i in range(50):
        producer.send(topic, b"%d" % i, partition=i % 2, timestamp=1_700_000_000_000 + i)
    producer.flush()
    ranges = pin(log, topic)
    for i in range(50, 60):  # after the pin: never read
        producer.send(topic, b"%d" % i, partition=i % 2)
    producer.flush()
    producer.close()
    seen = []

    def parse(partition, records):
        seen.append(partition)
        return [int(r.value) for r in records], 0

    read = read_ranges(log, ranges, parse, chunk_records=7)
    assert handed(read.chunks) == [*range(0, 50, 2), *range(1, 50, 2)]
    assert seen == sorted(seen)  # partition by partition
    assert [p.records for p in read.ranges.partitions] == [25, 25]
    again = read_ranges(log, ranges, parse, chunk_records=1000)
    assert again.ranges == read.ranges  # the same records, however they were chunked


def test_a_deleted_topic_is_said_not_read(log, new_topic):
    topic = new_topic()
    ranges = pin(log, topic)
    log.delete_topic(topic)
    with pytest.raises(RangeError, match="does not exist"):
        read_ranges(log, ranges, lambda partition, records: (records, 0))
