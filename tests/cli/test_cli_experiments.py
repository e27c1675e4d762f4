"""`loopline experiments ...` through click's CliRunner, on both backends."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from loopline.cli import cli
from loopline.models.registry import ModelRegistry
from support import unique

KEY = "the experiments CLI tests' key, 16+ bytes"


@pytest.fixture
def model(log, monkeypatch) -> str:
    """A model with versions 1 (at production), 2 and 3."""
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    name = unique("ranker")
    registry = ModelRegistry(log)
    for data in (b"one", b"two", b"three"):
        registry.publish(name, data, format="bytes", trainer="test", features=[])
    registry.promote(name, 1, "production")
    registry.close()
    return name


def run(log_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--log", log_url, "experiments", *args])


def ok(log_url: str, *args: str) -> str:
    result = run(log_url, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def error(log_url: str, *args: str) -> str:
    result = run(log_url, *args)
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    return result.stderr


def start(log_url: str, name: str, model: str, *more: str) -> str:
    arms = ("--arm", "control=alias:production", "--arm", "v2=version:2")
    return ok(log_url, "start", name, "--model", model, *arms, *more)


def test_start_status_list_history_stop(log_url, model) -> None:
    name = unique("ab")
    said = start(log_url, name, model, "--weights", "0.9,0.1", "--guardrail", "mean_label:0.1")
    assert f"experiment {name!r} started on model {model!r}" in said
    assert "control=alias production 0.9, v2=v2 0.1" in said
    status = ok(log_url, "status", name)
    assert "state:         running" in status and "guardrails:    mean_label:0.1" in status
    assert "v2\tv2\t0.1\ttreatment" in status
    shown = json.loads(ok(log_url, "status", name, "--json"))
    assert shown["arms"][0] == {
        "name": "control", "version": None, "alias": "production", "weight": 0.9, "control": True,
    }  # fmt: skip
    assert shown["revision"] == 1 and len(shown["salt"]) == 32
    listed = {e["name"]: e for e in json.loads(ok(log_url, "list", "--json"))}
    assert listed[name]["state"] == "running"
    assert f"{name}\t{model}\trunning\tsplit" in ok(log_url, "list")
    stopped = ok(log_url, "stop", name, "--reason", "latency")
    assert f"experiment {name!r} stopped (revision 2)" in stopped
    assert "answers with alias production again within a second" in stopped
    history = ok(log_url, "history", name).splitlines()
    assert [line.split("\t")[::2][:2] for line in history] == [["1", "running"], ["2", "stopped"]]
    assert history[1].endswith("\tlatency")
    revisions = json.loads(ok(log_url, "history", name, "--json"))
    assert [(r["revision"], r["state"], r["reason"]) for r in revisions] == [
        (1, "running", "started"),
        (2, "stopped", "latency"),
    ]


def test_a_canary_starts_at_the_first_step_of_its_ramp(log_url, model) -> None:
    name = unique("canary")
    said = start(log_url, name, model, "--policy", "canary", "--ramp", "0.01,0.05,0.25,0.5")
    assert "control=alias production 0.99, v2=v2 0.01" in said
    shown = json.loads(ok(log_url, "status", name, "--json"))
    assert shown["ramp"] == [0.01, 0.05, 0.25, 0.5] and shown["policy"] == "canary"


def test_conclude_with_promote_moves_the_control_alias_to_the_winner(log_url, model) -> None:
    name = unique("ab")
    start(log_url, name, model, "--auto-conclude", "--unit", "context.user")
    said = ok(log_url, "conclude", name, "--winner", "v2", "--promote", "--reason", "better")
    assert f"experiment {name!r} concluded (revision 2), winner v2" in said
    assert f"alias 'production' of model {model!r} now points at v2" in said
    moves = CliRunner().invoke(
        cli, ["--log", log_url, "models", "history", model, "--alias", "production"]
    )
    last = moves.stdout.splitlines()[-1].split("\t")
    assert last[5] == f"experiment {name}: v2 won (better)" and last[7] == "verified"
    shown = json.loads(ok(log_url, "status", name, "--json"))
    assert (shown["state"], shown["auto_conclude"], shown["unit"]) == (
        "concluded",
        True,
        "context.user",
    )
    assert "concluded already" in error(log_url, "conclude", name, "--winner", "v2")


def test_mistakes_are_one_line_errors_that_say_what_to_do(log_url, model) -> None:
    name = unique("ab")
    arms = ("--arm", "control=alias:production", "--arm", "v2=version:2")
    assert "give NAME=version:N or NAME=alias:ALIAS" in error(
        log_url, "start", name, "--model", model, "--arm", "control=production:x", *arms[2:]
    )
    assert "add up to 1.1, not 1" in error(
        log_url, "start", name, "--model", model, *arms, "--weights", "0.5,0.6"
    )
    assert "2 weights for 3 arms" in error(
        log_url, "start", name, "--model", model, *arms, "--arm", "v3=3", "--weights", "0.5,0.5"
    )
    assert "unknown metric 'clicks'" in error(
        log_url, "start", name, "--model", model, *arms, "--guardrail", "clicks:0.1"
    )
    start(log_url, name, model)
    assert f"experiment {name!r} is running on model {model!r}: stop or conclude it" in error(
        log_url, "start", unique("other"), "--model", model, *arms
    )
    assert "has no verdict yet: say which arm won with --winner (control, v2)" in error(
        log_url, "conclude", name, "--promote"
    )
    assert "has no arm 'v9' (arms: control, v2)" in error(
        log_url, "conclude", name, "--winner", "v9"
    )
    assert "Missing option '--reason'" in error(log_url, "stop", name)
    ok(log_url, "stop", name, "--reason", "done")
    assert f"error: experiment {name!r} is stopped already ('done')" in error(
        log_url, "stop", name, "--reason", "again"
    )
    missing = error(log_url, "status", "no-such-experiment")
    assert "no experiment 'no-such-experiment'" in missing and "experiments list" in missing
