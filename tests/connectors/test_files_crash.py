"""File ingest survives kill -9: run again, it resumes, and every row is in the topic exactly once.

A subprocess ingests a 200,000-row CSV file and prints a line after each
committed chunk; it is killed with SIGKILL at a random moment (during
startup, mid-chunk or between chunks), several times over, each new run
resuming the last. A final run finishes the file. Every row carries a unique
id: the topic must hold each id once, and nothing else.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from loopline.connectors import ingest_file
from loopline.contracts import LogRegistry
from support import consume_all

ROWS = 200_000
CHUNK = 5_000
CONTRACT = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "member", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
INGEST = textwrap.dedent(
    """
    import sys
    from loopline.connectors import ingest_file
    from loopline.log import open_log
    url, path, topic, chunk = sys.argv[1:]
    log = open_log(url)
    print("started", flush=True)
    report = ingest_file(log, path, topic, key="member", time_column="at", chunk_rows=int(chunk),
                         progress=lambda n: print("chunk", n, flush=True))
    print("done", report, flush=True)
    """
)


def write_orders(path) -> None:
    with path.open("w") as f:
        f.write("id,member,amount,at\n")
        f.writelines(
            f"{i},member-{i % 977},{i % 1000 / 10},{1714564800 + i}\n" for i in range(ROWS)
        )


def run_and_kill(url: str, path, topic: str, rng: random.Random) -> str:
    """Start an ingest, kill -9 it after a random number of chunks and a random pause."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST, url, str(path), topic, str(CHUNK)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    chunks = rng.randint(0, 8)
    seen = 0
    assert proc.stdout is not None
    while seen < chunks:
        line = proc.stdout.readline()
        if not line or line.startswith(b"done"):
            break
        seen += line.startswith(b"chunk")
    time.sleep(rng.uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (-signal.SIGKILL, 0), err.decode()[-2000:]
    return f"killed after {seen} chunks"


@pytest.mark.slow
def test_kill_9_mid_ingest_then_resume_writes_every_row_once(log, log_url, new_topic, tmp_path):
    path = tmp_path / "orders.csv"
    write_orders(path)
    topic = new_topic(3)
    registry = LogRegistry(log)
    registry.register(topic, CONTRACT)
    registry.bind(topic, topic)
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    history = [run_and_kill(log_url, path, topic, rng) for _ in range(4)]
    report = ingest_file(
        log, path, topic, key="member", time_column="at", registry=registry, chunk_rows=CHUNK
    )
    registry.close()
    assert report.read + report.skipped == ROWS, history
    assert report.skipped % CHUNK == 0 and report.dead_lettered == 0
    consumer = log.consumer(None, [topic], reset="earliest")
    records = consume_all(consumer, ROWS, timeout=120, max_records=10_000)
    records += consumer.poll(max_records=10_000, timeout=1.0)
    consumer.close()
    ids = [json.loads(r.value)["id"] for r in records]
    assert len(ids) == ROWS, (len(ids), len(set(ids)), history)
    assert set(ids) == set(range(ROWS)), history
