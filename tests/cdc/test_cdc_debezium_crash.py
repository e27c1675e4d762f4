"""Debezium's Kafka Connect worker killed with SIGKILL while the table changes loses no change.

The loopline half of this guarantee (`loopline cdc run` killed 10 times,
exactly once) is tests/cdc/test_cdc_crash.py. Debezium on Kafka Connect is
at least once: after a crash its connector starts again from the last
source offset the worker committed, so changes after it are published
again. So here every change the history trigger saw must be in the topic,
in commit order per key (a replay may repeat a run of them), nothing the
table never held may appear, and the topic's latest row per key must equal
the table. The worker is the one `scripts/test.sh` starts; once it has committed
an offset past Debezium's snapshot (a kill before that takes a second snapshot,
which folds changes into its rows), each of 10 rounds
kills it with SIGKILL at a random point while Debezium streams (0.2 to 1.5 s
after it resumed: before or after its next offset flush) and starts it again
with `scripts/connect.sh start`. A round takes about 5 s: the worker answers
again 3 to 5 s after the kill, and the broker holds the killed member's place
in the group until its session (2 s in the tests: scripts/test.sh) runs out;
only then does the restarted worker get the connector back (printed per round).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from loopline.cli import cli
from loopline.log import TopicNotFound, open_log
from support import read_all

ROWS, ROUNDS = 1_000, 10
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "connect.sh"


def _read(log_url: str, topic: str) -> list:
    log = open_log(log_url)
    try:
        return read_all(log, topic)
    except TopicNotFound:
        return []
    finally:
        log.close()


def _streaming_committed(log_url: str, connector: str) -> bool:
    """Whether the worker committed a streaming offset (past the snapshot) for `connector`."""
    port = os.environ["LOOPLINE_CONNECT_PORT"]
    for record in _read(log_url, f"_connect-offsets-{port}"):  # scripts/connect.sh names it
        mine = record.value is not None and json.loads(record.key)[0] == connector
        if mine and "lsn_proc" in json.loads(record.value):
            return True
    return False


def _worker_pid() -> int:
    """The Connect worker's pid, from the pid file `scripts/connect.sh` keeps."""
    port = os.environ["LOOPLINE_CONNECT_PORT"]
    state = os.environ.get("LOOPLINE_CONNECT_STATE") or os.path.join(
        tempfile.gettempdir(), f"loopline-connect-{port}"
    )
    return int(Path(state, "connect.pid").read_text().split()[0])


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Wait until the killed worker has exited and its port is free again."""
    port = int(os.environ["LOOPLINE_CONNECT_PORT"])
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() or _listening(port):
        assert time.monotonic() < deadline, f"the killed worker {pid} is still there"
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _latest(records) -> dict[str, dict]:
    """The latest row per key the topic's envelopes leave (a delete removes it)."""
    rows: dict[str, dict] = {}
    for r in records:
        if r.value is not None:
            envelope = json.loads(r.value)
            envelope = envelope.get("payload", envelope)
            key = str((envelope["after"] or envelope["before"])["id"])
            if envelope["after"] is None:
                rows.pop(key, None)
            else:
                rows[key] = envelope["after"]
    return rows


def _changes(records) -> dict[str, list]:
    """Each key's changes in the topic as (op, row after), snapshot reads and tombstones out."""
    found: dict[str, list] = {}
    for r in records:
        if r.value is None:
            continue  # the tombstone after a delete
        envelope = json.loads(r.value)
        envelope = envelope.get("payload", envelope)
        if envelope["op"] != "r":
            key = str((envelope["after"] or envelope["before"])["id"])
            found.setdefault(key, []).append((envelope["op"], envelope["after"]))
    return found


def _in_order(expected: list, found: list) -> bool:
    """Whether `expected` appears in `found` in order (a replay may repeat some of it)."""
    at = 0
    for change in found:
        if at < len(expected) and change == expected[at]:
            at += 1
    return at == len(expected)


def test_connect_worker_killed_loses_no_committed_change(members, connect_url):
    log_url = "kafka://" + os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    topic = members.table + "_dbz"
    members.insert(ROWS)
    members.forget_history()
    runner = CliRunner()
    args = ["--log", log_url, "cdc"]
    added = runner.invoke(cli, [
        *args, "add", members.table, members.url, "--table", members.table, "--topic", topic,
        "--connect-url", connect_url,
    ])  # fmt: skip
    assert added.exit_code == 0, added.output

    stop = threading.Event()

    def write() -> None:
        writer = random.Random(11)
        while not stop.is_set():
            members.random_changes(writer, 10, keys=ROWS + 200)
            time.sleep(0.02)

    # Changes made during the snapshot are folded into its rows, not published as changes:
    # the table starts changing once the snapshot's rows are all in the topic.
    deadline = time.monotonic() + 120
    while len(_read(log_url, topic)) < ROWS:
        assert time.monotonic() < deadline, "Debezium's snapshot never reached the topic"
        time.sleep(0.5)
    writer = threading.Thread(target=write)
    writer.start()
    # A worker killed before the end of the snapshot is committed snapshots again, and the
    # changes made in between are folded into its rows, never published as changes: so the
    # kills start once the worker committed an offset of the streaming that follows.
    while not _streaming_committed(log_url, members.table):
        assert time.monotonic() < deadline, "Debezium never committed a streaming offset"
        time.sleep(0.2)
    rng = random.Random(1920)
    log = open_log(log_url)
    watch = log.consumer(None, [topic], reset="latest")
    restarts, resumed = [], []
    try:
        for _ in range(ROUNDS):
            time.sleep(rng.uniform(0.2, 1.5))
            pid = _worker_pid()
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            _wait_gone(pid)
            while watch.poll(timeout=0.2):
                pass  # what the killed worker published before it died
            started = subprocess.run(
                ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=300
            )
            assert started.returncode == 0, started.stderr
            restarts.append(time.monotonic() - killed)
            # Each kill should hit a capturing connector: wait until the topic grows again.
            while not watch.poll(timeout=0.5):
                assert time.monotonic() - killed < 120, "Debezium never resumed after a restart"
            resumed.append(time.monotonic() - killed)
    finally:
        stop.set()
        writer.join()
        watch.close()
        log.close()
    print(
        f"{len(restarts)} rounds; kill to worker ready: {', '.join(f'{r:.1f}' for r in restarts)} s; "
        f"kill to capturing again: {', '.join(f'{r:.1f}' for r in resumed)} s"
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            records = _read(log_url, topic)
            found = _changes(records)
            expected: dict[str, list] = {}
            for _, op, key, row, _ in members.history():
                expected.setdefault(str(key), []).append((op, row))
            complete = all(_in_order(c, found.get(key, [])) for key, c in expected.items())
            if complete and _latest(records) == members.state():
                break
            if time.monotonic() > deadline:
                missing = {
                    key: (c, found.get(key, []))
                    for key, c in expected.items()
                    if not _in_order(c, found.get(key, []))
                }
                table, topic_rows = members.state(), _latest(records)
                differ = {
                    k for k in table.keys() | topic_rows.keys() if table.get(k) != topic_rows.get(k)
                }
                raise AssertionError(
                    f"{len(missing)} keys miss committed changes (one: {next(iter(missing.items()), None)}); "
                    f"{len(differ)} keys differ from the table "
                    f"(one: {[(k, table.get(k), topic_rows.get(k)) for k in list(differ)[:1]]})"
                )
            time.sleep(2)
        assert sum(len(c) for c in expected.values()) > 200
        for key, changes in found.items():
            assert set(map(json.dumps, changes)) <= set(map(json.dumps, expected[key])), key
        status = runner.invoke(cli, [*args, "status", members.table])
        assert "connector RUNNING" in status.output, status.output
    finally:
        removed = runner.invoke(cli, [*args, "remove", members.table])
        assert removed.exit_code == 0, removed.output
