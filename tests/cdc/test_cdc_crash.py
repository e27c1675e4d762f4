"""`loopline cdc run` killed with SIGKILL at random points loses no change and repeats none.

The connector is killed once early (at startup or in its snapshot); then,
while the table changes all the while (a writer thread, transactions of 1
to 10 changes), it is killed at a random moment nine more times (10 kills), restarted each time, and a last run with
--until-idle drains what is left. Every change the history trigger saw must
be in the topic exactly once, in commit order per key, and the topic's
latest row per key must equal the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

from click.testing import CliRunner

from cdc.tables import op_of, topic_state
from loopline.cli import cli
from loopline.connectors.cdc import read_cdc_progress
from loopline.log import TopicNotFound, open_log
from support import read_all

ROWS, ROUNDS = 3_000, 9  # with the kill in the snapshot: 10 kills


def _cdc_run(log_url: str, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "loopline", "--log", log_url, "cdc", "run", name, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def _wait_snapshot(log_url: str, source, timeout: float = 60.0) -> None:
    log = open_log(log_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TopicNotFound):
                if read_cdc_progress(log, source).snapshot_done:
                    return
            time.sleep(0.05)
    finally:
        log.close()
    raise AssertionError(f"no snapshot committed within {timeout} s")


def test_kill_9_at_random_points_loses_nothing(members, tmp_path):
    log_url = f"embedded:{tmp_path / 'log'}"
    members.insert(ROWS)
    members.forget_history()
    added = CliRunner().invoke(
        cli, ["--log", log_url, "cdc", "add", members.table, members.url, "--table", members.table]
    )
    assert added.exit_code == 0, added.output

    rng = random.Random(1919)
    stop = threading.Event()

    def write() -> None:
        writer = random.Random(7)
        while not stop.is_set():
            members.random_changes(writer, 20, keys=ROWS + 300)
            time.sleep(0.01)

    # the first kill lands at startup or in the snapshot, before the table changes
    first = _cdc_run(log_url, members.table)
    time.sleep(rng.uniform(0.05, 0.6))
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    writer = threading.Thread(target=write)
    try:
        for round in range(ROUNDS):
            process = _cdc_run(log_url, members.table)
            if round == 0:
                _wait_snapshot(log_url, members.source)
                writer.start()
            time.sleep(rng.uniform(0.3, 2.0))
            assert process.poll() is None, process.communicate()
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
    last = _cdc_run(log_url, members.table, "--until-idle")
    _, err = last.communicate(timeout=120)
    assert last.returncode == 0, err.decode()

    log = open_log(log_url)
    try:
        records = read_all(log, members.table + "_cdc")
    finally:
        log.close()
    assert sum(op_of(r) == "r" for r in records) == ROWS
    assert topic_state(records) == members.state()
    history = members.history()
    assert len(history) > 200
    expected: dict[str, list] = {}
    for _, op, key, row, _ in history:
        expected.setdefault(str(key), []).append((op, row))
    found: dict[str, list] = {}
    for r in records:
        if op_of(r) != "r":
            value = None if r.value is None else json.loads(r.value)
            found.setdefault(r.key.decode(), []).append((op_of(r), value))
    assert found == expected
