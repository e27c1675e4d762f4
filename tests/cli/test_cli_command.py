"""The installed `loopline` command and `python -m loopline`, run as real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopline.log import TopicConfig, open_log
from loopline.log.partitioner import partition_for

SRC = str(Path(__file__).resolve().parents[2] / "src")
SECRET = "hunter2"


def loopline_command() -> list[str]:
    """The console script installed next to this Python (`pip install -e .`), else -m."""
    script = Path(sys.executable).parent / "loopline"
    if script.exists():
        return [str(script)]
    found = shutil.which("loopline")
    return [found] if found else [sys.executable, "-m", "loopline"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "LOOPLINE_LOG": ""}


def loopline(*args: str, input: bytes | None = None, timeout: float = 60):
    return subprocess.run(
        [*loopline_command(), *args], input=input, capture_output=True, env=env(), timeout=timeout
    )


@pytest.fixture
def url(tmp_path) -> str:
    return f"embedded:{tmp_path / 'log'}"


def test_installed_command_round_trip(url: str) -> None:
    created = loopline("--log", url, "topics", "create", "clicks", "--partitions", "3")
    assert created.returncode == 0, created.stderr
    lines = b"".join(b'{"member": "m-%d", "n": %d}\n' % (i % 5, i) for i in range(100))
    produced = loopline("--log", url, "produce", "clicks", "--key", "member", input=lines)
    assert produced.returncode == 0, produced.stderr
    assert produced.stderr == b"produced 100 records to clicks\n"

    consumed = loopline(
        "--log", url, "consume", "clicks", "--from-beginning", "--meta", "--timeout", "0.5"
    )
    assert consumed.returncode == 0, consumed.stderr
    rows = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert sorted(r["value"]["n"] for r in rows) == list(range(100))
    assert all(r["partition"] == partition_for(r["key"].encode(), 3) for r in rows)

    listed = loopline("--log", url, "topics", "list")
    assert listed.stdout == b"clicks\t3\tdelete\n"


def test_python_dash_m(url: str) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "loopline", "--version"], capture_output=True, env=env(), timeout=60
    )
    assert version.returncode == 0
    assert version.stdout.startswith(b"loopline, version ")
    bad = subprocess.run(
        [sys.executable, "-m", "loopline", "--log", url, "produce", "nope"],
        input=b"{}\n",
        capture_output=True,
        env=env(),
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith(b"error: topic 'nope' does not exist")
    assert b"Traceback" not in bad.stderr


def test_invalid_json_exit_code_from_a_real_process(url: str) -> None:
    loopline("--log", url, "topics", "create", "t")
    result = loopline("--log", url, "produce", "t", input=b'{"a": 1}\n{"a": 2}\n{"a"\n{"a": 4}\n')
    assert result.returncode == 1
    assert b"line 3" in result.stderr
    assert b"Traceback" not in result.stderr
    log = open_log(url)
    try:
        assert sum(p.records for p in log.describe_topic("t").partitions) == 2
    finally:
        log.close()


def test_ctrl_c_stops_consume_cleanly(url: str) -> None:
    log = open_log(url)
    try:
        log.create_topic("t", TopicConfig(partitions=2))
        producer = log.producer()
        producer.send("t", b'{"n": 1}')
        producer.close()
    finally:
        log.close()
    process = subprocess.Popen(
        [*loopline_command(), "--log", url, "consume", "t", "--group", "g", "--from-beginning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b'{"n": 1}\n'  # it is running and has written
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert b"Traceback" not in err
    assert err.endswith(b"consumed 1 record from t\n")
    # the record written before Ctrl-C was committed
    again = loopline("--log", url, "consume", "t", "--group", "g", "--timeout", "0.3")
    assert again.stdout == b""


def test_produce_delivers_while_the_input_pauses(url: str) -> None:
    """`tail -f ... | loopline produce`: records do not wait for a full batch or for EOF."""
    log = open_log(url)
    log.create_topic("t")
    process = subprocess.Popen(
        [*loopline_command(), "--log", url, "produce", "t"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b'{"n": 1}\n')
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while sum(p.records for p in log.describe_topic("t").partitions) < 1:
            assert time.monotonic() < deadline, "the record was not delivered while stdin was open"
            time.sleep(0.05)
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        log.close()


def test_ctrl_c_stops_produce_cleanly(url: str) -> None:
    log = open_log(url)
    log.create_topic("t")
    process = subprocess.Popen(
        [*loopline_command(), "--log", url, "produce", "t"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b'{"n": 1}\n{"n": 2}\n')
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while sum(p.records for p in log.describe_topic("t").partitions) < 2:
            assert time.monotonic() < deadline, "the records were not delivered"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
        log.close()
    assert process.returncode == 130
    assert err == b"produced 2 records to t\n"


def test_secret_kafka_setting_never_printed(tmp_path) -> None:
    """Every command fails to reach the broker and says so, with the password given on the
    command line or in a file; none prints it. The six run at once: each waits ~10 s."""
    properties = tmp_path / "client.properties"
    properties.write_text(f"# test client\nsasl.username=alice\nsasl.password={SECRET}\n")
    bounded = [
        "--kafka-config",
        "socket.timeout.ms=1000",
        "--kafka-config",
        "message.timeout.ms=1000",
        "--kafka-config",
        "socket.connection.setup.timeout.ms=1000",
    ]
    runs = {}
    for command in (["topics", "list"], ["produce", "t"], ["consume", "t", "--timeout", "1"]):
        for secret_args in (
            ["--kafka-config", f"sasl.password={SECRET}"],
            ["--kafka-config-file", str(properties)],
        ):
            args = ["--log", "kafka://127.0.0.1:1", *bounded, *secret_args, *command]
            runs[" ".join(args)] = subprocess.Popen(
                [*loopline_command(), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env(),
            )
    try:
        for args, process in runs.items():
            out, err = process.communicate(b'{"a": 1}\n', timeout=60)
            assert SECRET.encode() not in out + err, args
            assert process.returncode == 1 and b"Kafka at kafka://127.0.0.1:1" in err, (args, err)
    finally:
        for process in runs.values():
            process.kill()


def test_a_command_imports_only_what_it_uses() -> None:
    """`loopline topics ...` does not import the other commands' modules (LazyGroup)."""
    code = (
        "import sys; from loopline.cli import cli, COMMANDS;"
        "cli(['topics', '--help'], standalone_mode=False);"
        "print(sorted(m for m in sys.modules if m.startswith('loopline.cli.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env(), check=True
    )
    imported = done.stdout.strip().splitlines()[-1]
    assert "'loopline.cli.topics'" in imported
    for module in ("cdc", "dataset", "serve", "demo", "train", "dashboard", "experiments"):
        assert f"'loopline.cli.{module}'" not in imported, imported


def test_every_command_is_found_under_its_name() -> None:
    import click

    from loopline.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
    assert cli.list_commands(ctx) == sorted(COMMANDS)
