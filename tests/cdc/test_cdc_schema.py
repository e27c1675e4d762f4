"""The topic's contract follows the table: compatible changes are new versions, others stop.

- ADD COLUMN with a default: the next version of the contract, and the
  changes after it carry the column;
- a column's type narrowed (double precision to integer): the backward rule
  refuses it, so the changes go to the dead-letter topic with the reason
  and the connector stops with an error that says what to do;
- a custom enum column is carried as its text, a value that has no place in
  the contract (an infinite timestamp) is a dead letter with the reason.
"""

from __future__ import annotations

import json

import pytest

from cdc.tables import op_of
from loopline.connectors.cdc import CdcError, run_cdc
from loopline.contracts import LogRegistry
from loopline.stream.deadletters import DeadLetter
from support import read_all


def _fields(log, topic: str) -> tuple[int, list[str]]:
    registry = LogRegistry(log)
    try:
        latest = registry.latest(topic)
        return latest.version, [f["name"] for f in latest.schema["fields"]]
    finally:
        registry.close()


def test_add_column_with_a_default_is_a_new_compatible_version(log, members):
    members.insert(3)
    run_cdc(log, members.source, until_idle=True)
    assert _fields(log, members.source.topic) == (1, ["id", "name", "score", "country"])
    members.conn.execute(f"ALTER TABLE {members.table} ADD COLUMN tier integer NOT NULL DEFAULT 1")
    members.conn.execute(f"UPDATE {members.table} SET tier = 2 WHERE id = 2")
    run_cdc(log, members.source, until_idle=True)
    assert _fields(log, members.source.topic) == (2, ["id", "name", "score", "country", "tier"])
    last = read_all(log, members.source.topic)[-1]
    assert (op_of(last), json.loads(last.value)["tier"]) == ("u", 2)


def test_a_narrowed_type_is_dead_lettered_and_stops_with_a_clear_error(log, members):
    members.conn.execute(f"ALTER TABLE {members.table} ADD COLUMN ratio double precision")
    members.insert(3)
    run_cdc(log, members.source, until_idle=True)
    members.conn.execute(f"ALTER TABLE {members.table} ALTER COLUMN ratio TYPE integer USING 1")
    members.conn.execute(f"UPDATE {members.table} SET ratio = 7 WHERE id = 1")
    with pytest.raises(CdcError) as stopped:
        run_cdc(log, members.source, until_idle=True)
    message = str(stopped.value)
    assert "changed in a way its contract refuses" in message
    assert "ratio" in message and f"loopline contracts mode {members.source.topic} none" in message
    letters = [DeadLetter.from_record(r) for r in read_all(log, members.source.topic + ".dlq")]
    assert letters and all("contract refuses" in d.reason for d in letters)
    # nothing published under the contract it breaks
    assert all(op_of(r) == "r" for r in read_all(log, members.source.topic))


def test_an_enum_is_text_and_an_unmappable_value_is_a_dead_letter(log, members):
    kind = f"mood_{members.table}"
    members.conn.execute(f"CREATE TYPE {kind} AS ENUM ('happy', 'sad')")
    try:
        members.conn.execute(f"ALTER TABLE {members.table} ADD COLUMN mood {kind}")
        members.conn.execute(f"ALTER TABLE {members.table} ADD COLUMN seen timestamptz")
        members.insert(2)
        run_cdc(log, members.source, until_idle=True)
        members.conn.execute(f"UPDATE {members.table} SET mood = 'sad' WHERE id = 1")
        members.conn.execute(f"UPDATE {members.table} SET seen = 'infinity' WHERE id = 2")
        report = run_cdc(log, members.source, until_idle=True)
        assert (report.changes, report.dead_lettered) == (1, 1)
        last = read_all(log, members.source.topic)[-1]
        assert json.loads(last.value)["mood"] == "sad"
        (letter,) = [
            DeadLetter.from_record(r) for r in read_all(log, members.source.topic + ".dlq")
        ]
        assert "column 'seen'" in letter.reason and "infinity" in letter.reason
    finally:
        members.conn.execute(f"DROP TABLE {members.table} CASCADE")
        members.conn.execute(f"CREATE TABLE {members.table} (id integer)")  # for the teardown
        members.conn.execute(f"DROP TYPE {kind}")
