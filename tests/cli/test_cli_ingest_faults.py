"""`loopline ingest` on files and logs that are not what they should be (issue 13, item 16).

A bad row is dead-lettered with the reason and the rest of the file goes on;
a bad file or an unusable log is one line on stderr and a non-zero exit,
never a traceback. Every case runs the real CLI on the real log.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from loopline.cli import cli
from support import unique


def run(url: str, *args: str):
    return CliRunner().invoke(cli, ["--log", url, *args])


def consumed(url: str, topic: str) -> list[dict]:
    out = run(url, "consume", topic, "--from-beginning", "--timeout", "2")
    assert out.exit_code == 0, out.output
    return [json.loads(line) for line in out.stdout.splitlines()]


def one_line_error(result) -> str:
    """The error a failed command printed, checked to be one line and no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def topic(log_url: str) -> str:
    name = unique("ingest-faults")
    assert run(log_url, "topics", "create", name).exit_code == 0
    return name


def test_a_csv_row_over_a_mebibyte_is_a_dead_letter_and_the_rest_goes_on(log_url, topic, tmp_path):
    wide, huge = "w" * 900_000, "y" * 2_500_000  # within a record; over two 1 MiB read blocks
    data = tmp_path / "wide.csv"
    data.write_text(f"a,b\n1,x\n2,{wide}\n3,bad,cells\n4,{huge}\n5,z\n6,x,y\n7,z\n")
    first = run(log_url, "ingest", str(data), "--topic", topic)
    assert first.exit_code == 0, first.output
    assert f"read 7 rows: produced 4 to {topic}, dead-lettered 3 to {topic}.dlq" in first.stdout
    rows = consumed(log_url, topic)
    assert [r["a"] for r in rows] == ["1", "2", "5", "7"] and rows[1]["b"] == wide
    letters = [json.loads(x) for x in run(log_url, "dlq", "inspect", topic).stdout.splitlines()]
    reasons = [letter["reason"] for letter in letters]
    assert [r.split(":")[0] for r in reasons] == ["row 3", "row 4", "row 6"], reasons
    assert "over the 999,000-byte limit" in reasons[1] and "keeps the first 65,536 of" in reasons[1]


def test_a_json_line_nested_too_deep_is_a_dead_letter(log_url, topic, tmp_path):
    data = tmp_path / "deep.jsonl"
    deep = '{"a": 2, "b": ' + "[" * 200_000 + "]" * 200_000 + "}"
    data.write_text('{"a": 1}\n' + deep + '\n{"a": 3}\n')
    result = run(log_url, "ingest", str(data), "--topic", topic)
    assert result.exit_code == 0, result.output
    assert f"read 3 rows: produced 2 to {topic}, dead-lettered 1 to {topic}.dlq" in result.stdout
    assert [r["a"] for r in consumed(log_url, topic)] == [1, 3]
    letters = run(log_url, "dlq", "inspect", topic).stdout.splitlines()
    reason = json.loads(letters[0])["reason"]
    assert "line 2" in reason and "deep" in reason, reason


def test_a_file_that_is_not_parquet_is_a_one_line_error(log_url, topic, tmp_path):
    data = tmp_path / "rows.parquet"
    data.write_text("member_id,item\nm1,1\n")
    error = one_line_error(run(log_url, "ingest", str(data), "--topic", topic))
    assert "rows.parquet" in error and "Parquet" in error, error
    assert consumed(log_url, topic) == []


def test_a_missing_key_column_is_a_one_line_error(log_url, topic, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("member_id,item\nm1,1\n")
    error = one_line_error(run(log_url, "ingest", str(data), "--topic", topic, "--key", "id"))
    assert "'id'" in error and "member_id" in error, error


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make the files of `directory` unwritable, even for root (the immutable flag)."""
    files = [p for p in directory.iterdir() if p.is_file()]
    modes = {p: p.stat().st_mode for p in files}
    for p in files:
        p.chmod(0o444)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", *map(str, files)], check=True)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
        for p, mode in modes.items():
            p.chmod(mode)


def test_a_read_only_log_is_a_one_line_error(tmp_path):
    url = f"embedded:{tmp_path / 'log'}"
    assert run(url, "topics", "create", "clicks").exit_code == 0
    data = tmp_path / "rows.csv"
    data.write_text("member_id,item\nm1,1\n")
    with read_only(tmp_path / "log"):
        ingest = one_line_error(run(url, "ingest", str(data), "--topic", "clicks"))
        create = one_line_error(run(url, "topics", "create", "other"))
    for error in (ingest, create):
        assert "readonly" in error or "read-only" in error, error
        assert str(tmp_path / "log") in error, error
