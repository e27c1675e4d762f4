"""The model registry in the log: versions, aliases, history, compaction, races, large artifacts.

Every test runs on the embedded log and on the real Kafka broker. The models
topics are shared by all tests on Kafka, so every test uses unique model names
(or topics of its own when it compacts them).
"""

from __future__ import annotations

import threading
import time

import pytest

from loopline.log import TopicConfig
from loopline.models import (
    ARTIFACTS_TOPIC,
    MODELS_TOPIC,
    AliasFollower,
    ArtifactUnavailable,
    HmacSigner,
    ModelNotFound,
    ModelRegistry,
    ModelRegistryError,
    SigningKeyMissing,
)
from support import FAST_CLEANING, compact_now, read_all, unique

SIGNER = HmacSigner(b"the registry tests' shared secret")
FEATURES = [("clicks_1h", "int"), ("country", "str")]


def registry_on(log, **kwargs) -> ModelRegistry:
    return ModelRegistry(log, signer=SIGNER, verifier=SIGNER.verifier(), **kwargs)


def publish(registry: ModelRegistry, name: str, data: bytes, **kwargs):
    defaults = dict(
        format="bytes",
        trainer="test",
        params={"depth": 3},
        features=FEATURES,
        metrics={"auc": 0.7},
    )
    return registry.publish(name, data, **{**defaults, **kwargs})


def test_versions_are_numbered_per_model_and_keep_everything_published(log):
    registry = registry_on(log)
    churn, fraud = unique("churn"), unique("fraud")
    manifest = {"sources": [{"topic": "clicks", "ranges": [[0, 0, 120]]}], "sha256": "ab" * 32}
    v1 = publish(registry, churn, b"one", manifest=manifest, code_version="abc123")
    v2 = publish(registry, churn, b"two", metrics={"auc": 0.75, "nan": float("nan")})
    f1 = publish(registry, fraud, b"other model")
    assert (v1.version, v2.version, f1.version) == (1, 2, 1)
    assert [v.version for v in registry.versions(churn)] == [1, 2]
    assert registry.latest(churn) == v2 and registry.version(churn, 1) == v1
    assert {churn, fraud} <= set(registry.names())
    assert v1.manifest == manifest and v1.code_version == "abc123"
    assert v1.features == tuple(FEATURES) and v1.params == {"depth": 3}
    assert v2.metrics == {"auc": 0.75, "nan": None}  # JSON has no NaN
    assert v1.signature.algorithm == "hmac-sha256" and v1.signature.key_id == SIGNER.key_id
    assert registry.load_artifact(v1) == b"one" and registry.load_artifact(v2) == b"two"

    # another process (a fresh registry) sees the same versions
    other = registry_on(log)
    assert other.versions(churn) == [v1, v2]
    assert MODELS_TOPIC in log.list_topics() and ARTIFACTS_TOPIC in log.list_topics()
    assert log.describe_topic(MODELS_TOPIC).config.compact
    other.close()
    registry.close()


def test_unknown_model_and_version_say_what_exists(log):
    registry = registry_on(log)
    name = unique("churn")
    with pytest.raises(ModelNotFound, match=f"no model named '{name}'"):
        registry.latest(name)
    publish(registry, name, b"x")
    with pytest.raises(ModelNotFound, match=r"has no version 5 \(versions: 1\)"):
        registry.version(name, 5)
    assert registry.alias(name, "production") is None
    with pytest.raises(ValueError, match="invalid model name"):
        publish(registry, "churn/2", b"x")
    registry.close()


def test_publishing_needs_a_signing_key(log, monkeypatch):
    for var in ("LOOPLINE_SIGNING_KEY", "LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    registry = ModelRegistry(log)
    with pytest.raises(SigningKeyMissing, match="LOOPLINE_SIGNING_KEY"):
        publish(registry, unique("churn"), b"x")
    registry.close()


def test_aliases_promote_rollback_and_full_history(log):
    registry = registry_on(log)
    name = unique("churn")
    for data in (b"1", b"2", b"3"):
        publish(registry, name, data)
    registry.promote(name, 1, "production")
    registry.promote(name, 2, "production", reason="better AUC")
    registry.promote(name, 3, "candidate")
    registry.promote(name, 3, "production")
    assert registry.promote(name, 3, "production").version == 3  # already there: nothing new
    assert registry.aliases(name) == {"production": 3, "candidate": 3}

    back = registry.rollback(name, "production", reason="guardrail")
    assert (back.version, back.previous, back.action) == (2, 3, "rollback")
    assert registry.alias(name, "production").version == 2
    registry.rollback(name, "production")  # each rollback goes one step further back
    assert registry.alias(name, "production").version == 1
    with pytest.raises(ModelRegistryError, match="nothing to roll back to"):
        registry.rollback(name, "production")
    with pytest.raises(ModelRegistryError, match="never set"):
        registry.rollback(name, "shadow")
    with pytest.raises(ModelNotFound):
        registry.promote(name, 9, "production")
    with pytest.raises(ValueError, match="cannot be a number"):
        registry.promote(name, 1, "7")

    history = registry.alias_history(name, "production")
    assert [(c.action, c.version, c.previous) for c in history] == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
    ]
    assert history[1].reason == "better AUC" and history[3].reason == "guardrail"
    assert all(c.by for c in history)
    # which version held the alias at any moment
    assert registry.at(name, "production", history[0].time_ms - 1) is None
    for change in history:
        assert registry.at(name, "production", change.time_ms).version in (
            c.version for c in history if c.time_ms == change.time_ms
        )
    assert registry.at(name, "production", history[-1].time_ms + 60_000).version == 1

    # another process sees the same aliases and the same history, in the same order
    other = registry_on(log)
    assert other.aliases(name) == registry.aliases(name)
    assert other.alias_history(name, "production") == history
    other.close()
    registry.close()


def test_at_answers_for_moments_between_changes(log):
    registry = registry_on(log)
    name = unique("churn")
    for data in (b"1", b"2"):
        publish(registry, name, data)
    first = registry.promote(name, 1, "production")
    time.sleep(0.02)
    second = registry.promote(name, 2, "production")
    assert second.time_ms > first.time_ms
    assert registry.at(name, "production", first.time_ms).version == 1
    assert registry.at(name, "production", second.time_ms - 1).version == 1
    assert registry.at(name, "production", second.time_ms).version == 2
    registry.close()


def test_refresh_shows_every_change_of_another_process_in_order(log):
    server = registry_on(log)
    publisher = registry_on(log)
    name = unique("churn")
    server.refresh()  # start from now
    publish(publisher, name, b"1")
    publish(publisher, name, b"2")
    publisher.promote(name, 1, "production")
    publisher.promote(name, 2, "production")
    publisher.rollback(name, "production")
    seen = [(e.kind, e.version, e.alias) for e in server.refresh() if e.name == name]
    assert seen == [
        ("version", 1, None),
        ("version", 2, None),
        ("alias", 1, "production"),
        ("alias", 2, "production"),
        ("alias", 1, "production"),
    ]
    assert [e for e in server.refresh() if e.name == name] == []

    stop, events = threading.Event(), []

    def record(event):
        if event.name == name:
            events.append(event)
            stop.set()

    publisher.promote(name, 2, "candidate")
    server.follow(record, stop=stop, interval=0.05)
    assert [(e.alias, e.version) for e in events] == [("candidate", 2)]
    server.close()
    publisher.close()


def test_follower_loads_new_versions_and_keeps_serving_when_one_is_refused(log):
    registry = registry_on(log)
    name = unique("churn")
    follower = AliasFollower(registry, name, "production")
    assert follower.refresh() is False and follower.model is None
    publish(registry, name, b"first")
    registry.promote(name, 1, "production")
    assert follower.refresh() is True
    assert (follower.version.version, follower.model) == (1, b"first")

    stranger = ModelRegistry(
        log, signer=HmacSigner(b"a key the servers do not hold"), verifier=SIGNER.verifier()
    )
    publish(stranger, name, b"evil")
    stranger.promote(name, 2, "production")
    assert follower.refresh() is False
    assert (follower.version.version, follower.model) == (1, b"first")
    assert "does not trust" in follower.refused[2]
    assert follower.refresh() is False  # not tried again and again

    publish(registry, name, b"third")
    registry.promote(name, 3, "production")
    assert follower.refresh() is True and follower.model == b"third"
    stranger.close()
    registry.close()


def test_racing_publishers_get_distinct_versions(log):
    """Two processes publishing at once: each version number is held by exactly one artifact."""
    name = unique("churn")
    registries = [registry_on(log) for _ in range(3)]
    results: list = []
    errors: list = []
    barrier = threading.Barrier(len(registries))

    def work(registry, who):
        try:
            barrier.wait()
            for i in range(4):
                results.append((publish(registry, name, b"%d-%d" % (who, i)), b"%d-%d" % (who, i)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r, i)) for i, r in enumerate(registries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(v.version for v, _ in results) == list(range(1, 13))
    reader = registry_on(log)
    for version, data in results:
        assert reader.version(name, version.version) == version
        assert reader.load_artifact(version) == data
    reader.close()
    for r in registries:
        r.close()


class StaleRegistry(ModelRegistry):
    """A publisher whose view is stale when it picks a number: it claims one already taken."""

    stale_reads = 0

    def _read(self) -> None:
        if self.stale_reads:
            self.stale_reads -= 1
            return
        super()._read()


def test_a_publisher_that_lost_the_race_withdraws_and_takes_the_next_number(log):
    name = unique("churn")
    first = registry_on(log)
    late = StaleRegistry(log, signer=SIGNER, verifier=SIGNER.verifier())
    winner = publish(first, name, b"winner")
    late.stale_reads = 1
    moved = publish(late, name, b"late")
    assert (winner.version, moved.version) == (1, 2)
    fresh = registry_on(log)
    assert [fresh.load_artifact(v) for v in fresh.versions(name)] == [b"winner", b"late"]
    records = [r for r in read_all(log, MODELS_TOPIC) if name.encode() in (r.key or b"")]
    # the late publisher's claim of v1 is withdrawn: the last record of its key is a tombstone
    late_claim = f"version/{name}/1/{moved.artifact_id}".encode()
    assert [r.value for r in records if r.key == late_claim][-1] is None
    for r in (first, late, fresh):
        r.close()


def test_compaction_keeps_every_version_alias_change_and_artifact(log, backend):
    models, chunks = unique("models"), unique("artifacts")
    for topic in (models, chunks):
        log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    kwargs = dict(topic=models, artifacts_topic=chunks, chunk_size=7)
    registry = registry_on(log, **kwargs)
    late = StaleRegistry(log, signer=SIGNER, verifier=SIGNER.verifier(), **kwargs)
    name = unique("churn")
    artifacts = [b"version one, in chunks", b"version two, also chunked", b"three"]
    for data in artifacts[:2]:
        publish(registry, name, data)
    late.stale_reads = 1
    moved = publish(late, name, artifacts[2])  # lost a race first: withdrew that claim
    for version in (1, 2, 3, 1, 2):
        registry.promote(name, version, "production")
    registry.promote(name, 3, "candidate")
    registry.rollback(name, "production")
    before = (
        registry.versions(name),
        registry.alias_history(name, "production"),
        registry.alias_history(name, "candidate"),
        registry.aliases(name),
    )

    compact_now(log, backend, models, chunks)

    claims = [
        r.key
        for r in read_all(log, models)
        if r.value is not None
        and r.key.startswith(b"version/")
        and moved.artifact_id.encode() in r.key
    ]
    assert claims == [f"version/{name}/3/{moved.artifact_id}".encode()]  # the withdrawn one went
    after = registry_on(log, **kwargs)
    assert (
        after.versions(name),
        after.alias_history(name, "production"),
        after.alias_history(name, "candidate"),
        after.aliases(name),
    ) == before
    assert [after.load_artifact(v) for v in after.versions(name)] == artifacts
    for change in before[1]:  # compaction changes no answer of "what did it hold then"
        assert after.at(name, "production", change.time_ms) == registry.at(
            name, "production", change.time_ms
        )
    for r in (registry, late, after):
        r.close()


def test_artifacts_are_chunked_in_the_log(log):
    registry = registry_on(log, chunk_size=1000)
    name = unique("churn")
    data = bytes(range(256)) * 20  # 5120 bytes: 6 chunks
    version = publish(registry, name, data)
    assert (version.chunks, version.uri) == (6, None)
    chunk_records = [
        r for r in read_all(log, ARTIFACTS_TOPIC) if r.key.startswith(f"{name}/".encode())
    ]
    assert len(chunk_records) == 6 and max(len(r.value) for r in chunk_records) == 1000
    assert registry_on(log).load_artifact(version) == data
    registry.close()


def test_a_missing_chunk_is_reported_not_guessed(log, backend):
    models, chunks = unique("models"), unique("artifacts")
    for topic in (models, chunks):
        log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    registry = registry_on(log, topic=models, artifacts_topic=chunks, chunk_size=4)
    name = unique("churn")
    version = publish(registry, name, b"0123456789")
    producer = log.producer()
    producer.send(chunks, None, f"{name}/{version.artifact_id}/1".encode())  # deleted
    producer.flush()
    producer.close()
    compact_now(log, backend, chunks)
    with pytest.raises(
        ArtifactUnavailable, match=rf"'{name}' v1: 1 of 3 artifact chunks are missing"
    ):
        registry.load_artifact(version)
    registry.close()


def test_large_artifacts_go_to_a_file_and_only_the_uri_travels(log, tmp_path):
    registry = registry_on(log, max_in_log=100, artifact_dir=str(tmp_path / "store"))
    name = unique("churn")
    big = b"w" * 5000
    small = publish(registry, name, b"small enough")
    large = publish(registry, name, big, format="lightgbm")
    assert small.uri is None and small.chunks == 1
    assert large.uri.startswith("file://") and large.uri.endswith(".txt") and large.chunks == 0
    assert registry.load_artifact(large) == big
    assert registry_on(log).version(name, 2).uri == large.uri
    without_dir = registry_on(log, max_in_log=100)
    with pytest.raises(ModelRegistryError, match="artifact_dir"):
        publish(without_dir, name, big)
    registry.close()
    without_dir.close()


def test_a_topic_that_would_delete_history_is_refused(log):
    topic = unique("models")
    log.create_topic(topic, TopicConfig(compact=False))
    with pytest.raises(ModelRegistryError, match=r"cleanup.policy=delete.*needs a compacted topic"):
        registry_on(log, topic=topic)
