"""The traps a new user meets in the first hour, each as that user meets it."""

from __future__ import annotations

import socket
import stat

import pytest
from click.testing import CliRunner

from loopline.cli import cli


def test_keygen_creates_the_key_directory_private(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The help's own example, in a directory without keys/.
    result = CliRunner().invoke(cli, ["models", "keygen", "keys/models.key"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "models.key").stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "models.key.pub").exists()


def test_unknown_file_type_is_one_line(tmp_path):
    url = f"embedded:{tmp_path / 'log'}"
    (tmp_path / "orders.txt").write_text("order_id,amount\no1,3\n")
    assert CliRunner().invoke(cli, ["--log", url, "topics", "create", "orders"]).exit_code == 0
    result = CliRunner().invoke(
        cli, ["--log", url, "ingest", str(tmp_path / "orders.txt"), "--topic", "orders"]
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: cannot ingest {str(tmp_path / 'orders.txt')!r}: unknown file type '.txt'; "
        "use .csv, .jsonl, .ndjson, .json (JSON lines) or .parquet"
    ]


@pytest.mark.parametrize("command", [["ingest-server"], ["schema-registry"]])
def test_a_busy_port_is_one_line_before_any_serving_on(tmp_path, command):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["--log", f"embedded:{tmp_path / 'log'}", *command, "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is in use; "
        "stop what listens there or choose another --port"
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "list"],
        ["topics", "describe", "clicks"],
        ["consume", "clicks", "--max", "1"],
        ["contracts", "list"],
        ["models", "list"],
    ],
)
def test_reading_commands_refuse_a_missing_log_and_name_it(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPLINE_LOG", raising=False)
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: no log at embedded:./.loopline ({tmp_path.resolve() / '.loopline'}): nothing "
        "was ever written there; pass --log embedded:PATH or set LOOPLINE_LOG to the log you mean"
    ]
    assert not (tmp_path / ".loopline").exists()  # reading made nothing


BUSY_APP = """
from loopline import App
from loopline.features import Entity, FeatureSet, Table, TableFeature

app = App("busy", features=FeatureSet(tables=[
    Table("profiles", Entity("member", "member_id"), [TableFeature("age", "age")])]))
"""


@pytest.mark.parametrize(
    "command", [["features", "run"], ["outcomes", "run"], ["monitor"], ["experiments", "run"]]
)
def test_a_busy_metrics_port_is_one_line(tmp_path, monkeypatch, command):
    (tmp_path / "busyapp.py").write_text(BUSY_APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"embedded:{tmp_path / 'log'}"
    assert CliRunner().invoke(cli, ["--log", url, "topics", "create", "profiles"]).exit_code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["--log", url, *command, "busyapp:app", "--metrics-port", str(port)]
        )
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is in use; "
        "stop what listens there or choose another --metrics-port"
    ]


def test_a_busy_demo_dashboard_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["--log", f"embedded:{tmp_path / 'log'}", "demo", "--dashboard-port", str(port)]
        )
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is in use; "
        "stop what listens there or choose another --dashboard-port"
    ]
