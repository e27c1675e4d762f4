"""What only the embedded log has to show: one member per group, sharing a directory, size retention."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from loopline.log import GroupMemberConflict, TopicConfig, open_log
from loopline.log.embedded import cleaner
from support import consume_all


@pytest.fixture
def elog(tmp_path):
    log = open_log(f"embedded:{tmp_path / 'log'}")
    yield log
    log.close()


def test_second_member_of_a_group_is_refused_and_names_kafka(elog):
    elog.create_topic("t")
    first = elog.consumer("g", ["t"])
    with pytest.raises(GroupMemberConflict) as info:
        elog.consumer("g", ["t"])
    assert "kafka://" in str(info.value)
    first.close()
    elog.consumer("g", ["t"]).close()  # free again once the member left


def test_member_of_a_dead_process_is_replaced_at_once(elog, tmp_path):
    elog.create_topic("t")
    script = textwrap.dedent(
        f"""
        import os
        from loopline.log import open_log
        log = open_log("embedded:{tmp_path / "log"}")
        log.consumer("g", ["t"])
        os._exit(0)  # die without leaving the group, like kill -9
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    elog.consumer("g", ["t"]).close()


def test_processes_share_a_directory(elog, tmp_path):
    elog.create_topic("shared", TopicConfig(partitions=2))
    script = textwrap.dedent(
        f"""
        import sys
        from loopline.log import open_log
        log = open_log("embedded:{tmp_path / "log"}")
        p = log.producer()
        for i in range(2000):
            p.send("shared", b"%s-%d" % (sys.argv[1].encode(), i), b"k%d" % (i % 13))
            if i % 100 == 0:
                p.flush()
        p.flush()
        """
    )
    reader = elog.consumer("reader", ["shared"], reset="earliest")
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b", "c")]
    got = consume_all(reader, 6000, timeout=60)
    assert all(p.wait(timeout=60) == 0 for p in procs)
    assert len(got) == 6000
    assert len({r.value for r in got}) == 6000
    for part in (0, 1):
        offsets = [r.offset for r in got if r.partition == part]
        assert offsets == list(range(len(offsets)))
    reader.close()


def test_retention_by_size_keeps_the_newest(elog, monkeypatch):
    # Producers apply retention after they append, at most once a second per partition;
    # every time here, so the last append leaves the topic as retention wants it.
    monkeypatch.setattr(cleaner, "RETENTION_CHECK_SECONDS", 0.0)
    elog.create_topic("capped", TopicConfig(retention_bytes=20_000))
    producer = elog.producer()
    for i in range(100):
        producer.send("capped", b"x" * 1000 + b"%d" % i)
        producer.flush()  # one batch per record, so whole batches can be dropped
    info = elog.describe_topic("capped").partitions[0]
    assert info.end == 100
    assert 80 <= info.start < 100
    consumer = elog.consumer(None, ["capped"], reset="earliest")
    got = consume_all(consumer, 100 - info.start)
    assert got[-1].value.endswith(b"99")
    consumer.close()


def test_fenced_transactional_producer_cannot_commit(elog):
    from loopline.log import TransactionError

    elog.create_topic("t")
    old = elog.producer(transactional_id="app")
    old.begin_transaction()
    old.send("t", b"zombie")
    new = elog.producer(transactional_id="app")
    with pytest.raises(TransactionError, match="fenced"):
        old.commit_transaction()
    new.begin_transaction()
    new.send("t", b"live")
    new.commit_transaction()
    consumer = elog.consumer(None, ["t"], reset="earliest")
    assert [r.value for r in consumer.poll(timeout=1.0)] == [b"live"]


def test_records_reported_undelivered_never_arrive_later(elog):
    from loopline.log import DeliveryError

    elog.create_topic("doomed")
    elog.create_topic("kept")
    producer = elog.producer()
    producer.send("doomed", b"lost")
    elog.delete_topic("doomed")
    with pytest.raises(DeliveryError) as info:
        producer.flush()
    assert info.value.failed == 1
    elog.create_topic("doomed")
    producer.send("kept", b"fine")
    assert producer.flush() == 1
    producer.close()
    assert elog.describe_topic("doomed").partitions[0].end == 0
