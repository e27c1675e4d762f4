"""Crash safety of the embedded log: kill -9 producers and consumers mid-stream, many times.

A producer process sends numbered records and prints each number once `flush`
acknowledged it; a consumer process reads in a group, commits after each poll
and prints what it read and what it committed. Both are killed with SIGKILL at
random moments and restarted. Afterwards:

- every acknowledged number is in the log (nothing acknowledged is lost);
- the log decodes completely and its offsets are 0, 1, 2, ... (no torn records,
  no repeated offsets);
- after each restart the consumer resumed exactly at the last committed offset
  (nothing is consumed twice past a committed offset).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from loopline.log import TopicConfig, open_log
from support import read_all

PRODUCER = textwrap.dedent(
    """
    import sys
    from loopline.log import TopicConfig, open_log
    log = open_log(sys.argv[1])
    producer = log.producer()
    n = int(sys.argv[2])
    while True:
        batch = list(range(n, n + 50))
        for i in batch:
            producer.send("events", b"%d" % i, b"k%d" % (i % 7))
        producer.flush()
        print(batch[-1], flush=True)
        n += 50
    """
)

CONSUMER = textwrap.dedent(
    """
    import sys
    from loopline.log import TopicConfig, open_log
    log = open_log(sys.argv[1])
    consumer = log.consumer("crash-group", ["events"], reset="earliest")
    start = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
    print("start", " ".join(f"{p}:{o}" for p, o in sorted(start.items())), flush=True)
    while True:
        records = consumer.poll(max_records=37, timeout=0.2)
        if not records:
            continue
        positions = " ".join(f"{tp.partition}:{consumer.position(tp)}" for tp in consumer.assignment())
        print("committing", positions, flush=True)  # a kill may land between these two lines
        consumer.commit()
        print("committed", positions, flush=True)
    """
)


def _lines(proc: subprocess.Popen) -> list[str]:
    out, _ = proc.communicate(timeout=30)
    return out.decode().splitlines()


@pytest.mark.slow
def test_kill_9_loses_nothing_acknowledged_and_never_rereads_committed(tmp_path):
    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    log.create_topic("events", TopicConfig(partitions=3))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(7)
    acknowledged: list[range] = []
    last_committed: dict[int, int] = {}  # the last commit the consumer confirmed
    last_intended: dict[int, int] = {}  # the last commit it started (may or may not have landed)
    resumes_checked = 0
    for round_ in range(25):
        # Each round numbers its records afresh, so a record that was sent but not
        # acknowledged before the kill can never be mistaken for an acknowledged one.
        first = round_ * 10_000_000
        producer = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, url, str(first)], stdout=subprocess.PIPE, env=env
        )
        consumer = subprocess.Popen(
            [sys.executable, "-c", CONSUMER, url], stdout=subprocess.PIPE, env=env
        )
        head = ""
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 1.5))  # maybe while the consumer still starts
        else:
            # once the consumer started: on a busy machine its imports alone can take longer
            # than any fixed sleep, and a round that kills it before its start checks no resume
            head = consumer.stdout.readline().decode()
            time.sleep(rng.uniform(0.1, 1.0))
        for proc in (producer, consumer) if rng.random() < 0.5 else (consumer, producer):
            proc.send_signal(signal.SIGKILL)
        produced = _lines(producer)
        consumed = head.splitlines() + _lines(consumer)
        if produced:
            acknowledged.append(range(first, int(produced[-1]) + 1))
        if not consumed:
            continue  # killed before it even started
        start = dict(map(int, x.split(":")) for x in consumed[0].split()[1:])
        if last_committed:
            # Resumed exactly at a committed position: never before the last confirmed
            # commit (that would read committed records twice), never past the last one begun.
            assert start in (last_committed, last_intended), (start, last_committed, last_intended)
            resumes_checked += 1
        last_committed = last_intended = start  # where it resumed is what had landed
        for line in consumed[1:]:
            positions = dict(map(int, x.split(":")) for x in line.split()[1:])
            if line.startswith("committed"):
                last_committed = positions
            last_intended = positions

    assert sum(len(r) for r in acknowledged) > 1000, "the producers acknowledged too little to test"
    assert resumes_checked >= 10
    records = read_all(log, "events")
    numbers = [int(r.value) for r in records]
    assert len(numbers) == len(set(numbers)), "a record was written twice"
    present = set(numbers)
    lost = [n for span in acknowledged for n in span if n not in present]
    assert lost == [], f"{len(lost)} acknowledged records lost"
    for partition in range(3):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(len(offsets))), "offsets repeated or skipped"
    log.close()
