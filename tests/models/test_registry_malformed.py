"""A malformed record on the registry topics never stops a reader (issue 13, item 10).

`_loopline_models` is written by other processes and
other versions of loopline, or by anyone with access to the log. A record that
does not decode is logged, counted and skipped: `models list`, `promote`, a new
`serve` and a running follower all keep working, and see the changes after it.
On Kafka the models topics are private to each test (the broker is shared).
"""

from __future__ import annotations

from click.testing import CliRunner

from loopline.cli import cli
from loopline.log import TopicConfig, open_log
from loopline.models import MODELS_TOPIC, AliasFollower, HmacSigner, ModelRegistry
from support import send_records, unique

SECRET = "the malformed-record tests' shared secret"
SIGNER = HmacSigner(SECRET.encode())

BAD_MODEL_RECORDS = [
    (b"version/scorer/99/x", b"[]"),  # the record of the issue
    (b"version/scorer/98/y", b"not json"),
    (b"version/scorer/97/z", b'{"name": "scorer", "version": "ninety-seven"}'),
    (b"alias/scorer/production/e1", b"[]"),
    (b"alias/scorer/production/e2", b'{"version": {"a": 1}, "action": "promote"}'),
    (b"alias/scorer/production/e3", b'"promote"'),
]


def models_topics(log, backend: str) -> dict[str, str]:
    if backend == "embedded":
        return {}
    topics = {"topic": unique("models"), "artifacts_topic": unique("artifacts")}
    for topic in topics.values():
        log.create_topic(topic, TopicConfig(compact=True))
    return topics


def publish(registry: ModelRegistry, name: str, data: bytes):
    return registry.publish(name, data, format="bytes", trainer="test", features=[])


def test_a_malformed_models_record_is_skipped_and_the_next_promote_applies(log, backend):
    topics = models_topics(log, backend)
    registry = ModelRegistry(log, signer=SIGNER, **topics)
    publish(registry, "scorer", b"v1")
    publish(registry, "scorer", b"v2")
    registry.promote("scorer", 1, "production")
    serving = ModelRegistry(log, signer=SIGNER, **topics)  # a `serve` that runs meanwhile
    follower = AliasFollower(serving, "scorer", "production")
    assert follower.refresh() and follower.version.version == 1

    send_records(log, registry.topic, BAD_MODEL_RECORDS)
    registry.promote("scorer", 2, "production")  # a legitimate promote right after them

    assert follower.refresh(), "the running follower did not apply the promote"
    assert (follower.version.version, follower.model) == (2, b"v2")
    fresh = ModelRegistry(log, signer=SIGNER, **topics)  # `models list`, a new `serve`
    assert [v.version for v in fresh.versions("scorer")] == [1, 2]
    assert fresh.aliases("scorer") == {"production": 2}
    assert fresh.table.skipped == len(BAD_MODEL_RECORDS)
    fresh.promote("scorer", 1, "production")  # `promote` works too
    assert follower.refresh() and follower.version.version == 1
    for r in (fresh, serving, registry):
        r.close()


def test_models_cli_lists_and_promotes_past_a_malformed_record(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", SECRET)
    for var in ("LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    url = f"embedded:{tmp_path / 'log'}"
    log = open_log(url)
    registry = ModelRegistry(log, signer=SIGNER)
    publish(registry, "scorer", b"v1")
    send_records(log, MODELS_TOPIC, BAD_MODEL_RECORDS[:1])
    registry.close()
    log.close()

    listed = CliRunner().invoke(cli, ["--log", url, "models", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.startswith("scorer\t1\t")
    promoted = CliRunner().invoke(
        cli, ["--log", url, "models", "promote", "scorer", "1", "--alias", "production"]
    )
    assert promoted.exit_code == 0, promoted.output
    assert "now points at v1" in promoted.stdout
