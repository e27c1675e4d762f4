"""Alias moves are signed like versions: a forged move of ``production`` is refused.

Anyone who can write to ``_loopline_models`` could append an alias record that
points ``production`` at an old, worse version. Every test writes such records
with a plain producer of the log, as an attacker would, on both backends
(unique model names: the Kafka broker is shared).
"""

from __future__ import annotations

import json

import msgspec

from loopline.log import Record, TopicConfig
from loopline.models import MODELS_TOPIC, AliasFollower, HmacSigner, ModelRegistry
from loopline.models.registry_records import AliasRecord, alias_key
from loopline.models.registry_view import RegistryView
from support import read_all, send_records, unique

SIGNER = HmacSigner(b"the alias tests' shared secret")
STRANGER = HmacSigner(b"a secret the servers do not hold")


def registry_on(log, **topics) -> ModelRegistry:
    return ModelRegistry(log, signer=SIGNER, verifier=SIGNER.verifier(), **topics)


def publish(registry: ModelRegistry, name: str, data: bytes):
    return registry.publish(name, data, format="bytes", trainer="test", features=[])


def forge(log, name: str, version: int, previous: int | None, topic=MODELS_TOPIC, **extra):
    """Append an alias move of `name`'s production to the models topic, as an attacker would."""
    move = {"kind": "alias", "name": name, "alias": "production", "version": version,
            "action": "promote", "previous": previous, "time": 2**41, "by": "mallory", **extra}  # fmt: skip
    key = alias_key(name, "production", unique("forged"))
    send_records(log, topic, [(key.encode(), json.dumps(move).encode())])


def test_a_forged_alias_move_is_refused_and_serving_keeps_the_old_version(log):
    registry = registry_on(log)
    name = unique("churn")
    publish(registry, name, b"old and worse")
    publish(registry, name, b"good")
    registry.promote(name, 2, "production")
    follower = AliasFollower(registry_on(log), name, "production")
    assert follower.refresh() and follower.model == b"good"

    forge(log, name, 1, 2)  # unsigned
    forge(log, name, 1, 2, signature=STRANGER.sign(b"anything").to_dict())  # another key

    assert follower.refresh() is False
    assert (follower.version.version, follower.model) == (2, b"good")
    assert "does not trust" in follower.refused[1]  # the last refusal of a move to v1
    fresh = registry_on(log)  # a new `serve` or `models list`
    assert fresh.aliases(name) == {"production": 2}
    history = fresh.alias_history(name, "production")
    assert [(c.version, c.by, c.refused is None) for c in history] == [
        (2, history[0].by, True),
        (1, "mallory", False),
        (1, "mallory", False),
    ]
    assert "unsigned" in history[1].refused and "does not trust" in history[2].refused
    assert history[2].key_id == STRANGER.key_id and history[1].key_id is None
    for r in (fresh, follower.registry, registry):
        r.close()


def test_a_signed_promotion_is_followed_and_names_its_key(log):
    registry = registry_on(log)
    name = unique("churn")
    publish(registry, name, b"one")
    publish(registry, name, b"two")
    registry.promote(name, 1, "production")
    follower = AliasFollower(registry_on(log), name, "production")
    assert follower.refresh() and follower.model == b"one"
    moved = registry.promote(name, 2, "production", reason="better")
    assert (moved.key_id, moved.verified, moved.refused) == (SIGNER.key_id, True, None)
    assert follower.refresh() and follower.model == b"two"
    registry.rollback(name, "production")
    assert follower.refresh() and follower.model == b"one"
    history = follower.registry.alias_history(name, "production")
    assert [(c.version, c.key_id, c.verified) for c in history] == [
        (1, SIGNER.key_id, True),
        (2, SIGNER.key_id, True),
        (1, SIGNER.key_id, True),
    ]
    follower.registry.close()
    registry.close()


def test_a_version_signature_or_another_moves_signature_does_not_sign_a_move(log):
    topics = {"topic": unique("models"), "artifacts_topic": unique("artifacts")}
    for topic in topics.values():  # of its own: the test reads the whole topic
        log.create_topic(topic, TopicConfig(compact=True))
    registry = registry_on(log, **topics)
    name = unique("churn")
    v1 = publish(registry, name, b"old")
    publish(registry, name, b"new")
    first = registry.promote(name, 1, "production")
    registry.promote(name, 2, "production")
    stored = registry.alias_history(name, "production")
    assert first.key_id == stored[0].key_id == SIGNER.key_id

    forge(log, name, 1, 2, topics["topic"], signature=v1.signature.to_dict())  # a version's
    # The first move's own signature, copied under a new key: it names its event.
    (key, value) = next(
        (r.key, r.value) for r in read_all(log, topics["topic"]) if r.key.startswith(b"alias/")
    )
    moved = json.loads(value)
    send_records(log, topics["topic"], [(key.replace(b"/production/", b"/production/x"), value)])

    fresh = registry_on(log, **topics)
    assert fresh.aliases(name) == {"production": 2}
    refused = [c.refused for c in fresh.alias_history(name, "production")[2:]]
    assert len(refused) == 2 and all("does not verify" in r for r in refused), refused
    assert moved["signature"]["key_id"] == SIGNER.key_id
    fresh.close()
    registry.close()


def test_moves_written_before_signing_decode_and_are_refused_only_where_keys_are(log, monkeypatch):
    for var in ("LOOPLINE_SIGNING_KEY", "LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    registry = registry_on(log)
    name = unique("churn")
    publish(registry, name, b"one")
    old = {"kind": "alias", "version": 1, "action": "promote", "previous": None, "time": 5,
           "by": "ops@host", "reason": "before signing"}  # fmt: skip
    key = alias_key(name, "production", unique("e"))
    send_records(log, MODELS_TOPIC, [(key.encode(), json.dumps(old).encode())])

    verifying = registry_on(log)
    assert verifying.aliases(name) == {}
    (change,) = verifying.alias_history(name, "production")
    assert (change.version, change.by, change.reason) == (1, "ops@host", "before signing")
    assert change.key_id is None
    assert "unsigned" in change.refused and "loopline models promote" in change.refused
    unchecked = ModelRegistry(log)  # no key: it verifies nothing (it can load no model either)
    assert unchecked.aliases(name) == {"production": 1}
    assert unchecked.alias_history(name, "production")[0].verified is False
    verifying.promote(name, 1, "production", reason="signed again")
    again = registry_on(log)
    assert again.aliases(name) == {"production": 1}
    assert again.alias_history(name, "production")[-1].key_id == SIGNER.key_id
    for r in (again, unchecked, verifying, registry):
        r.close()


def test_a_signed_move_older_than_the_one_holding_the_alias_is_refused():
    # What compaction would leave of a signed move copied later under its own key.
    view = RegistryView(MODELS_TOPIC, SIGNER.verifier())
    moves = [("e1", 1, None, 10), ("e2", 2, 1, 20), ("e1-copy", 1, 2, 10)]
    for offset, (event, version, previous, time) in enumerate(moves):
        move = AliasRecord(name="churn", alias="production", version=version, action="promote",
                           previous=previous, time=time, by="ops").signed(SIGNER, event)  # fmt: skip
        value = msgspec.json.encode(move)
        view.apply(
            Record(MODELS_TOPIC, 0, offset, time, f"alias/churn/production/{event}".encode(), value)
        )
    state = view.aliases["churn"]["production"]
    assert state.stack == [1, 2] and state.current().version == 2
    assert "older" in state.history[-1].refused
