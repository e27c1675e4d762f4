"""`loopline topics ...`, global options and error reporting, through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from loopline.cli import cli
from loopline.log import TopicNotFound, open_log


@pytest.fixture
def url(tmp_path) -> str:
    """A log that exists (reading commands refuse a missing one), without topics."""
    made = f"embedded:{tmp_path / 'log'}"
    open_log(made).close()
    return made


def run(url: str, *args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--log", url, *args], input=input)


def assert_one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output


def test_create_list_describe_delete(url: str) -> None:
    created = run(
        url,
        "topics",
        "create",
        "clicks",
        "--partitions",
        "3",
        "--retention",
        "7d",
        "--retention-bytes",
        "1GiB",
        "--config",
        "segment.ms=60000",
    )
    assert created.exit_code == 0, created.output
    assert "created topic 'clicks' (3 partitions" in created.stdout
    assert run(url, "topics", "create", "profiles", "--compact").exit_code == 0

    listed = run(url, "topics", "list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["clicks\t3\tdelete", "profiles\t1\tcompact"]

    log = open_log(url)
    try:
        config = log.describe_topic("clicks").config
        assert (config.partitions, config.retention_ms, config.retention_bytes) == (
            3,
            7 * 86_400_000,
            2**30,
        )
        assert config.extra == {"segment.ms": "60000"}
        producer = log.producer()
        producer.send("clicks", b"{}", partition=2)
        producer.close()
    finally:
        log.close()

    described = run(url, "topics", "describe", "clicks")
    assert described.exit_code == 0
    text = described.stdout
    for expected in (
        "partitions:",
        "cleanup:",
        "delete",
        "retention:",
        "7d",
        "1GiB",
        "config segment.ms: 60000",
        "partition\tstart\tend\trecords",
        "0\t0\t0\t0",
        "2\t0\t1\t1",
    ):
        assert expected in text

    as_json = json.loads(run(url, "topics", "describe", "clicks", "--json").stdout)
    assert as_json["offsets"][2] == {"partition": 2, "start": 0, "end": 1}
    assert as_json["retention_ms"] == 7 * 86_400_000

    deleted = run(url, "topics", "delete", "clicks", "--yes")
    assert deleted.exit_code == 0
    assert run(url, "topics", "list").stdout == "profiles\t1\tcompact\n"


def test_list_json_and_empty(url: str) -> None:
    assert run(url, "topics", "list").stdout == ""
    run(url, "topics", "create", "a")
    names = [t["name"] for t in json.loads(run(url, "topics", "list", "--json").stdout)]
    assert names == ["a"]


def test_delete_without_yes_refuses_when_not_interactive(url: str) -> None:
    run(url, "topics", "create", "clicks")
    result = run(url, "topics", "delete", "clicks", input="y\n")
    assert result.exit_code == 1
    assert "--yes" in result.stderr
    assert "Traceback" not in result.output
    assert run(url, "topics", "list").stdout.startswith("clicks\t")


def test_create_existing_topic_is_one_line_error(url: str) -> None:
    run(url, "topics", "create", "clicks")
    assert_one_line_error(run(url, "topics", "create", "clicks"), "topic 'clicks' already exists")


def test_bad_topic_settings_are_one_line_errors(url: str) -> None:
    result = run(url, "topics", "create", "clicks", "--retention", "soon")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read duration 'soon'")
    result = run(url, "topics", "create", "clicks", "--partitions", "0")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: a topic needs at least 1 partition")
    result = run(url, "topics", "create", "no spaces")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid topic name")


@pytest.mark.parametrize(
    "args",
    [
        ["topics", "describe", "nope"],
        ["topics", "delete", "nope", "--yes"],
        ["produce", "nope"],
        ["consume", "nope", "--timeout", "0"],
    ],
)
def test_unknown_topic_is_one_line_error(url: str, args: list[str]) -> None:
    result = run(url, *args, input='{"a": 1}\n')
    assert_one_line_error(result, str(TopicNotFound("nope")))


def test_unknown_log_url_is_one_line_error() -> None:
    result = CliRunner().invoke(cli, ["--log", "ftp://x", "topics", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown log URL 'ftp://x'")


def test_log_url_from_environment(url: str) -> None:
    runner = CliRunner(env={"LOOPLINE_LOG": url})
    assert runner.invoke(cli, ["topics", "create", "from-env"]).exit_code == 0
    assert run(url, "topics", "list").stdout == "from-env\t1\tdelete\n"


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("loopline, version ")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["topics"],
        ["topics", "list"],
        ["topics", "create"],
        ["topics", "describe"],
        ["topics", "delete"],
        ["produce"],
        ["consume"],
    ],
)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.stdout
    assert "Example" in result.stdout


def test_create_if_not_exists_succeeds_twice(url: str) -> None:
    assert run(url, "topics", "create", "clicks", "--if-not-exists").exit_code == 0
    again = run(url, "topics", "create", "clicks", "--if-not-exists", "--partitions", "5")
    assert again.exit_code == 0
    assert "already exists" in again.output
    described = run(url, "topics", "describe", "clicks").output
    assert [line.split() for line in described.splitlines() if line.startswith("partitions:")] == [
        ["partitions:", "1"]
    ]
