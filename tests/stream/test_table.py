"""A topic read as a table: to its end, then followed; a bad record is skipped, never a stop."""

from __future__ import annotations

import time

import msgspec

from loopline.stream.table import Table, read_table
from support import send_records


def test_read_to_the_end_then_follow_in_the_background_past_bad_records(log, new_topic):
    topic = new_topic(partitions=2, compact=True)
    send_records(log, topic, [(b"a", b"1"), (b"b", b"[]"), (b"c", b"2")])
    latest: dict[bytes, int] = {}

    def apply(record):
        latest[record.key] = msgspec.json.decode(record.value, type=int)

    table = Table(log, topic, apply)
    assert table.refresh() == 3
    assert (latest, table.skipped) == ({b"a": 1, b"c": 2}, 1)
    table.follow(interval=0.1)
    send_records(log, topic, [(b"a", b"not json"), (b"a", b"3"), (b"d", b"4")])
    deadline = time.monotonic() + 30
    while latest.get(b"d") != 4:
        assert time.monotonic() < deadline, "the follower did not apply the new records"
        time.sleep(0.1)
    assert (latest[b"a"], table.skipped) == (3, 2)
    table.close()


def test_read_table_reads_once_from_the_first_record(log, new_topic):
    topic = new_topic(compact=True)
    send_records(log, topic, [(b"k%d" % i, b"%d" % i) for i in range(25)])
    seen = []
    assert read_table(log, topic, lambda r: seen.append(int(r.value))) == 25
    assert seen == list(range(25))
