"""Kafka settings of the CLI: parsing, and secrets kept out of every message."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import loopline.cli.settings as settings_module
from loopline.cli import cli
from loopline.cli.settings import LogSettings, read_properties
from loopline.log import LogUnavailable, open_log

SECRET = "hunter2"


def test_properties_file(tmp_path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        "# comment\n! also a comment\n\nbootstrap.servers = a:9092\n"
        'sasl.jaas.config=x required password="p=q";\nssl.ca.location: /etc/ca.pem\n'
    )
    assert read_properties(str(path)) == {
        "bootstrap.servers": "a:9092",
        "sasl.jaas.config": 'x required password="p=q";',
        "ssl.ca.location": "/etc/ca.pem",
    }


def test_bad_settings_are_named_without_their_text(tmp_path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(f"acks=all\n{SECRET}\n")
    for args in (["--kafka-config-file", str(path)], ["--kafka-config", SECRET]):
        result = CliRunner().invoke(cli, [*args, "topics", "list"])
        assert result.exit_code == 2
        assert SECRET not in result.output
        assert "key=value" in result.output


def test_command_line_setting_wins_over_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "client.properties"
    path.write_text("acks=1\nlinger.ms=5\n")
    seen = {}

    def fake_open_log(url, *, kafka_config=None):
        seen.update(kafka_config or {})
        raise LogUnavailable("no broker")

    monkeypatch.setattr(settings_module, "open_log", fake_open_log)
    result = CliRunner().invoke(
        cli,
        [
            "--log",
            "kafka://h:1",
            "--kafka-config-file",
            str(path),
            "--kafka-config",
            "acks=all",
            "topics",
            "list",
        ],
    )
    assert result.stderr == "error: no broker\n"
    assert seen == {"acks": "all", "linger.ms": "5"}


@pytest.mark.parametrize(
    "error",
    [
        LogUnavailable(f"login failed with password {SECRET}"),
        RuntimeError(f"librdkafka said {SECRET}"),
    ],
)
def test_secrets_are_redacted_from_errors(monkeypatch, error: Exception) -> None:
    def fake_open_log(url, *, kafka_config=None):
        raise error

    monkeypatch.setattr(settings_module, "open_log", fake_open_log)
    result = CliRunner().invoke(
        cli, ["--log", "kafka://h:1", "--kafka-config", f"sasl.password={SECRET}", "topics", "list"]
    )
    assert result.exit_code == 1
    assert SECRET not in result.output
    assert "***" in result.output


def test_secret_not_echoed_for_embedded_log(tmp_path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "--log",
            f"embedded:{tmp_path}",
            "--kafka-config",
            f"sasl.password={SECRET}",
            "topics",
            "list",
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --kafka-config applies to kafka:// logs only")
    assert SECRET not in result.output


def test_secret_settings_are_redacted_from_what_the_cli_says() -> None:
    config = {
        "sasl.password": SECRET,
        "ssl.key.pem": "KEYPEM",
        "sasl.oauthbearer.client.secret": "CLIENTSECRET",
        "acks": "all",
    }
    settings = LogSettings("kafka://h:1", config)
    said = settings.redact(f"cannot connect with {' '.join(config.values())}")
    assert said == "cannot connect with *** *** *** all"


def test_config_file_from_environment_is_ignored_for_embedded_log(tmp_path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(f"sasl.password={SECRET}\n")
    runner = CliRunner(env={"LOOPLINE_KAFKA_CONFIG_FILE": str(path)})
    open_log(f"embedded:{tmp_path / 'log'}").close()
    result = runner.invoke(cli, ["--log", f"embedded:{tmp_path / 'log'}", "topics", "list"])
    assert result.exit_code == 0, result.output
