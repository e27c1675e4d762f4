"""Tokens at start: an empty or short token is refused, and each server says whether auth is on."""

from __future__ import annotations

import os

import pytest
from servers import SRC, cli_server, free_port, run_loopline

from loopline.log import open_log

TOKEN = "a-good-token-0123456789"
SERVERS = {
    "ingest-server": ("LOOPLINE_INGEST_TOKEN", []),
    "schema-registry": ("LOOPLINE_REGISTRY_TOKEN", []),
    "serve": ("LOOPLINE_SERVE_TOKEN", ["tokenshop:app"]),
}
APP_MODULE = """
from loopline.app import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer

app = App(
    "tokenshop",
    features=FeatureSet(tables=[
        Table("profiles", Entity("member", "member_id"), [TableFeature("age", "age", default=30)])
    ]),
    models=[Model("churn", trainer=LightGBMTrainer, entity="member")],
)
"""


def server_args(tmp_path, command: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start `command` on an embedded log."""
    log_dir = tmp_path / "log"
    args = ["--log", f"embedded:{log_dir}", command, *SERVERS[command][1]]
    args += ["--port", str(free_port())]
    env: dict[str, str] = {}
    if command == "serve":
        (tmp_path / "tokenshop.py").write_text(APP_MODULE)
        log = open_log(f"embedded:{log_dir}")
        log.create_topic("profiles")
        log.close()
        args += ["--state-dir", str(tmp_path / "state")]
        env["PYTHONPATH"] = SRC + os.pathsep + str(tmp_path)
    return args, env


@pytest.mark.parametrize("how", ["empty variable", "empty flag", "short flag"])
@pytest.mark.parametrize("command", sorted(SERVERS))
def test_an_empty_or_short_token_is_refused_at_start(tmp_path, command: str, how: str) -> None:
    args, env = server_args(tmp_path, command)
    variable = SERVERS[command][0]
    if how == "empty variable":
        env[variable] = ""
    elif how == "empty flag":
        args += ["--token", ""]
    else:
        args += ["--token", "short-secret"]
    done = run_loopline(*args, env=env, timeout=60)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    assert "16 characters" in line
    assert variable in line or "--token" in line
    assert "short-secret" not in line


@pytest.mark.parametrize("command", sorted(SERVERS))
def test_every_server_says_at_start_whether_auth_is_on(tmp_path, command: str) -> None:
    args, env = server_args(tmp_path, command)
    port = args[args.index("--port") + 1]
    with cli_server(*args, port=int(port), env={**env, SERVERS[command][0]: TOKEN}) as (_, on):
        pass
    with cli_server(*args, port=int(port), env=env) as (_, off):
        pass
    said_on = [line for line in on if "auth" in line]
    said_off = [line for line in off if "auth" in line]
    assert len(said_on) == 1 and len(said_off) == 1, (on, off)
    assert "bearer token required" in said_on[0]
    assert "auth off" in said_off[0]
    assert not any(TOKEN in line for line in on)
