"""Snapshot then stream, on both backends: the topic is the table, change by change.

100,000 existing rows, then 50,000 random inserts, updates and deletes in
transactions of 1 to 10 while the connector follows the table (the issue's
sizes). The topic's latest value per key must equal the table, and each
key's changes must be in the topic in commit order, each once (checked
against the change history a trigger kept).
"""

from __future__ import annotations

import json
import random
import threading
import time

from cdc.tables import op_of, topic_state
from loopline.connectors.cdc import CdcError, read_cdc_progress, run_cdc
from loopline.contracts import LogRegistry
from support import read_all

ROWS, CHANGES = 100_000, 50_000


def _wait_snapshot(log, source, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if read_cdc_progress(log, source).snapshot_done:
                return
        except Exception:  # the topics are being created
            pass
        time.sleep(0.1)
    raise AssertionError("the snapshot did not commit within 60 s")


def test_snapshot_then_stream_equals_the_table(log, members):
    members.insert(ROWS)
    members.forget_history()  # the rows the snapshot copies
    stop = threading.Event()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            run_cdc(log, members.source, stop=stop, poll_interval=0.05)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        _wait_snapshot(log, members.source)
        members.random_changes(random.Random(19), CHANGES, keys=ROWS + 500)
    finally:
        time.sleep(0.5)
        stop.set()
        thread.join(60)
    assert not failure, failure
    run_cdc(log, members.source, until_idle=True)  # whatever the follower left

    records = read_all(log, members.source.topic)
    snapshot = [r for r in records if op_of(r) == "r"]
    assert len(snapshot) == ROWS
    assert topic_state(records) == members.state()

    # every change once, per key in commit order, with its commit time as the record's time
    history = members.history()
    assert len(records) == ROWS + len(history) > ROWS + CHANGES // 2
    expected: dict[str, list] = {}
    for _, op, key, row, committed in history:
        expected.setdefault(str(key), []).append((op, row, committed))
    found: dict[str, list] = {}
    for r in records[ROWS:]:
        value = None if r.value is None else json.loads(r.value)
        found.setdefault(r.key.decode(), []).append((op_of(r), value, r.timestamp))
    assert found == expected

    registry = LogRegistry(log)
    try:
        binding = registry.binding(members.source.topic)
        assert binding is not None and binding.encoding == "json"
        fields = registry.latest(binding.contract).schema["fields"]
        assert [(f["name"], f["type"]) for f in fields] == [
            ("id", "long"),
            ("name", "string"),
            ("score", ["null", "long"]),
            ("country", ["null", "string"]),
        ]
    finally:
        registry.close()


def test_a_table_without_a_key_is_refused_with_what_to_do(log, members):
    members.conn.execute(f"ALTER TABLE {members.table} DROP CONSTRAINT {members.table}_pkey")
    try:
        run_cdc(log, members.source, until_idle=True)
    except CdcError as exc:
        assert "no primary key" in str(exc) and "--key" in str(exc)
    else:
        raise AssertionError("a table without a key was captured")
