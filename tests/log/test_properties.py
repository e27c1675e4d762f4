"""Property tests of group resume (both backends) and compaction (embedded: compaction on demand)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.log import TopicConfig, open_log
from support import consume_all, examples, read_all, unique


def test_group_resume_reads_every_record_once_across_restarts(log, backend):
    """However a group's reading is cut into sessions that commit, the sessions together
    read every record exactly once."""

    @settings(
        max_examples=examples(backend, 30, 4),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        total=st.integers(1, 60),
        partitions=st.integers(1, 3),
        cuts=st.lists(st.integers(1, 25), min_size=1, max_size=5),
    )
    def check(total, partitions, cuts):
        topic = unique("resume")
        log.create_topic(topic, TopicConfig(partitions=partitions))
        producer = log.producer()
        for i in range(total):
            producer.send(topic, b"%d" % i, b"k%d" % (i % 5))
        producer.flush()
        producer.close()
        group = unique()
        seen: list[bytes] = []
        for cut in [*cuts, total]:  # the last session reads whatever is left
            consumer = log.consumer(group, [topic], reset="earliest")
            got = consume_all(consumer, min(cut, total - len(seen)), max_records=cut, timeout=10)
            # commit exactly what this session processed, partition by partition
            offsets = {}
            for record in got[:cut]:
                offsets[record.topic_partition] = record.offset + 1
            if offsets:
                consumer.commit(offsets)
            seen += [r.value for r in got[:cut]]
            consumer.close()
            if len(seen) >= total:
                break
        assert sorted(seen, key=int) == [b"%d" % i for i in range(total)]

    check()


operations = st.lists(
    st.tuples(st.sampled_from([b"a", b"b", b"c", b"d"]), st.none() | st.binary(max_size=8)),
    min_size=1,
    max_size=50,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations, compactions=st.lists(st.integers(0, 50), max_size=3))
def test_compaction_keeps_exactly_the_latest_live_value_of_every_key(
    tmp_path_factory, ops, compactions
):
    log = open_log(f"embedded:{tmp_path_factory.mktemp('log')}")
    log.create_topic("t", TopicConfig(compact=True, extra={"delete.retention.ms": "0"}))
    producer = log.producer()
    points = set(compactions)
    for i, (key, value) in enumerate(ops):
        producer.send("t", value, key, timestamp=1_000 + i)
        producer.flush()
        if i in points:
            log.compact("t")  # compacting midway must not change the outcome
    log.compact("t")
    latest = {}
    for key, value in ops:
        latest[key] = value
    records = read_all(log, "t")
    last_offset = len(ops) - 1
    live = {k: v for k, v in latest.items() if v is not None}
    # every live key exactly once, with its latest value; tombstoned keys gone, except that
    # the partition's very last record is always kept (it holds the next offset)
    kept = {r.key: r.value for r in records}
    assert len(kept) == len(records)
    assert {k: v for k, v in kept.items() if v is not None} == live
    assert all(r.value is not None or r.offset == last_offset for r in records)
    offsets = [r.offset for r in records]
    assert offsets == sorted(offsets) and offsets[-1] == last_offset
    log.close()
