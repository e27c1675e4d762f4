"""`loopline models`: list, show, promote, rollback, history and keygen, on both backends."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from loopline.cli import cli
from loopline.log import open_log
from loopline.models import MODELS_TOPIC, HmacSigner, ModelRegistry
from support import send_records, unique

SECRET = "the CLI tests' shared signing secret"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for var in ("LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", SECRET)


def run(url: str, *args: str, env: dict | None = None) -> Result:
    return CliRunner().invoke(cli, ["--log", url, *args], env=env)


def publish(url: str, name: str, *payloads: bytes, signer=None) -> None:
    log = open_log(url)
    registry = ModelRegistry(log, signer=signer or HmacSigner(SECRET))
    for data in payloads:
        registry.publish(
            name,
            data,
            format="bytes",
            trainer="test",
            params={"depth": 3},
            features=[("clicks_1h", "int")],
            metrics={"auc": 0.7},
        )
    registry.close()
    log.close()


def test_list_show_promote_rollback_history(log_url):
    name = unique("churn")
    publish(log_url, name, b"one", b"two", b"three")

    listed = run(log_url, "models", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line.split("\t") for line in listed.stdout.splitlines() if line.startswith(name))
    assert row[1:3] == ["3", "3"] and row[4] == ""

    shown = run(log_url, "models", "show", name)
    assert shown.exit_code == 0, shown.output
    latest = json.loads(shown.stdout)
    assert (latest["name"], latest["version"], latest["versions"]) == (name, 3, [1, 2, 3])
    assert latest["features"] == [{"name": "clicks_1h", "type": "int"}]
    assert latest["signature"]["algorithm"] == "hmac-sha256" and latest["created_at"].endswith("Z")
    assert SECRET not in shown.output

    for version in ("1", "2", "3"):
        promoted = run(log_url, "models", "promote", name, version, "--alias", "production")
        assert promoted.exit_code == 0, promoted.output
    assert (
        promoted.stdout.strip() == f"model '{name}': alias 'production' now points at v3 (was v2)"
    )
    again = run(log_url, "models", "promote", name, "3", "--alias", "production")
    assert "already points at v3" in again.stdout

    shown = json.loads(run(log_url, "models", "show", name, "production", "--verify").stdout)
    assert (shown["version"], shown["aliases"], shown["verified"]) == (3, ["production"], True)

    rolled = run(log_url, "models", "rollback", name, "--alias", "production", "--reason", "drop")
    assert rolled.exit_code == 0, rolled.output
    assert rolled.stdout.strip() == f"model '{name}': alias 'production' rolled back to v2 (was v3)"

    history = run(log_url, "models", "history", name, "--alias", "production")
    assert history.exit_code == 0, history.output
    rows = [line.split("\t") for line in history.stdout.splitlines()]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("1", "promote", ""),
        ("2", "promote", "1"),
        ("3", "promote", "2"),
        ("2", "rollback", "3"),
    ]
    assert rows[-1][5] == "drop"
    assert {(r[6], r[7]) for r in rows} == {(HmacSigner(SECRET).key_id, "verified")}
    at_second = run(log_url, "models", "history", name, "--alias", "production", "--at", rows[1][0])
    assert at_second.stdout.strip() in ("v2", "v3")  # promotions within one millisecond tie
    before = run(log_url, "models", "history", name, "--alias", "production", "--at", "2001-01-01")
    assert before.exit_code == 1 and "pointed at no version" in before.stderr

    listed = run(log_url, "models", "list")
    row = next(line.split("\t") for line in listed.stdout.splitlines() if line.startswith(name))
    assert row[4] == "production=v2"


def test_refused_versions_are_not_shown_as_verified_nor_promoted(log_url):
    name = unique("churn")
    publish(log_url, name, b"ours")
    publish(log_url, name, b"theirs", signer=HmacSigner("somebody else's secret key"))
    refused = run(log_url, "models", "show", name, "2", "--verify")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: model '{name}' v2 refused: it is signed with")
    assert "does not trust" in refused.stderr
    not_promoted = run(log_url, "models", "promote", name, "2", "--alias", "production")
    assert not_promoted.exit_code == 1 and "refused" in not_promoted.stderr
    forced = run(log_url, "models", "promote", name, "2", "--alias", "candidate", "--no-verify")
    assert forced.exit_code == 0, forced.output
    no_key = run(
        log_url,
        "models",
        "promote",
        name,
        "1",
        "--alias",
        "production",
        env={"LOOPLINE_SIGNING_KEY": ""},
    )
    assert no_key.exit_code == 0 and "signature not checked" in no_key.stderr
    assert "the move is unsigned" in no_key.stderr


def test_history_names_the_signer_and_a_forged_move_is_refused(log_url, tmp_path):
    name = unique("churn")
    publish(log_url, name, b"old", b"new")
    assert run(log_url, "models", "promote", name, "2", "--alias", "production").exit_code == 0
    forged = {"kind": "alias", "name": name, "alias": "production", "version": 1,
              "action": "promote", "previous": 2, "time": 2**41, "by": "mallory"}  # fmt: skip
    log = open_log(log_url)
    send_records(log, MODELS_TOPIC, [(f"alias/{name}/production/{unique('e')}".encode(),
                                      json.dumps(forged).encode())])  # fmt: skip
    log.close()

    history = run(log_url, "models", "history", name, "--alias", "production")
    assert history.exit_code == 0, history.output
    rows = [line.split("\t") for line in history.stdout.splitlines()]
    assert [(r[1], r[4], r[6], r[7][:22]) for r in rows] == [
        ("2", rows[0][4], HmacSigner(SECRET).key_id, "verified"),
        ("1", "mallory", "unsigned", "refused: the move is u"),
    ]
    listed = run(log_url, "models", "list")
    assert f"{name}\t2\t2\t" in listed.stdout and "production=v2" in listed.stdout

    # A server's keys only (it verifies, it cannot sign): it does not write a move it would refuse.
    made = run(log_url, "models", "keygen", str(tmp_path / "models.key"))
    assert made.exit_code == 0, made.output
    server = {
        "LOOPLINE_SIGNING_KEY": "",
        "LOOPLINE_VERIFY_KEY_FILE": str(tmp_path / "models.key.pub"),
    }
    refused = run(log_url, "models", "rollback", name, "--alias", "production", env=server)
    assert refused.exit_code == 1 and "cannot move alias 'production'" in refused.stderr


def test_errors_say_what_to_do(log_url):
    name = unique("churn")
    open_log(log_url).close()  # a log that exists, without the model
    missing = run(log_url, "models", "show", name)
    assert missing.exit_code == 1 and f"no model named '{name}'" in missing.stderr
    publish(log_url, name, b"one")
    no_version = run(log_url, "models", "show", name, "7")
    assert no_version.exit_code == 1 and "has no version 7 (versions: 1)" in no_version.stderr
    no_alias = run(log_url, "models", "show", name, "production")
    assert no_alias.exit_code == 1 and "has no alias 'production'" in no_alias.stderr
    nothing = run(log_url, "models", "rollback", name, "--alias", "production")
    assert nothing.exit_code == 1 and "loopline models promote" in nothing.stderr
    never = run(log_url, "models", "history", name, "--alias", "production")
    assert never.exit_code == 1 and "was never set" in never.stderr
    bad_time = run(log_url, "models", "history", name, "--alias", "production", "--at", "soon")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.stderr
    short = run(log_url, "models", "list", env={"LOOPLINE_SIGNING_KEY": "too-short"})
    assert short.exit_code == 1 and "too short" in short.stderr and "too-short" not in short.stderr


def test_keygen_then_ed25519_publish_and_verify(log_url, tmp_path):
    made = run(log_url, "models", "keygen", str(tmp_path / "models.key"))
    assert made.exit_code == 0, made.output
    assert (tmp_path / "models.key.pub").exists()
    assert run(log_url, "models", "keygen", str(tmp_path / "models.key")).exit_code == 1
    name = unique("churn")
    from loopline.models import Ed25519Signer

    publish(log_url, name, b"signed", signer=Ed25519Signer.from_file(tmp_path / "models.key"))
    server_env = {
        "LOOPLINE_SIGNING_KEY": "",
        "LOOPLINE_VERIFY_KEY_FILE": str(tmp_path / "models.key.pub"),
    }
    verified = run(log_url, "models", "show", name, "--verify", env=server_env)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["signature"]["algorithm"] == "ed25519"
    hmac_only = run(log_url, "models", "show", name, "--verify")
    assert hmac_only.exit_code == 1 and "only holds hmac-sha256 keys" in hmac_only.stderr


def test_help_shows_examples():
    for args in (["models"], ["models", "show"], ["models", "promote"], ["models", "history"]):
        shown = CliRunner().invoke(cli, [*args, "--help"])
        assert (
            shown.exit_code == 0
            and "Examples:" in shown.output
            and "loopline models" in shown.output
        )
