"""Signatures: an artifact loads only if it verifies; unsigned, tampered or unknown-key is refused.

The refusal tests run on the embedded log and on the real Kafka broker; an
attacker is anyone who can write to the models topics without the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import stat

import pytest

from loopline.log import TopicConfig
from loopline.models import (
    AliasFollower,
    ArtifactUnavailable,
    Ed25519Signer,
    Ed25519Verifier,
    HmacSigner,
    HmacVerifier,
    Keyring,
    ModelRegistry,
    Signature,
    UntrustedModel,
    generate_ed25519_keys,
    signer_from_env,
    verifier_from_env,
)
from loopline.models.artifacts import decode
from loopline.models.registry_records import version_key
from support import FAST_CLEANING, compact_now, unique

SECRET = "the signing tests' shared secret"
SIGNER = HmacSigner(SECRET)


def publish(registry, name, data=b"the model", **kwargs):
    defaults = dict(format="bytes", trainer="test", features=[("x", "float")])
    return registry.publish(name, data, **{**defaults, **kwargs})


def write_raw(log, topic: str, key: str, value: bytes | None) -> None:
    """What an attacker with write access to a topic (but no key) can do."""
    producer = log.producer()
    producer.send(topic, value, key.encode())
    producer.flush()
    producer.close()


# -- the keys themselves ---------------------------------------------------------------


def test_hmac_signatures_verify_only_with_the_same_key():
    message = b"statement"
    signature = SIGNER.sign(message)
    HmacVerifier(SECRET).verify(message, signature)
    HmacVerifier("an older key, still trusted", SECRET).verify(message, signature)
    with pytest.raises(UntrustedModel, match="does not trust"):
        HmacVerifier("another secret entirely").verify(message, signature)
    forged = Signature(
        "hmac-sha256", SIGNER.key_id, HmacSigner("guess guess guess").sign(message).value
    )
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        HmacVerifier(SECRET).verify(message, forged)
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        HmacVerifier(SECRET).verify(b"statemenT", signature)
    with pytest.raises(UntrustedModel, match="unsigned"):
        HmacVerifier(SECRET).verify(message, None)
    with pytest.raises(ValueError, match="too short"):
        HmacSigner("short")


def test_secrets_never_show_in_reprs_or_errors(tmp_path):
    verifier = HmacVerifier(SECRET)
    shown = [repr(SIGNER), repr(verifier), repr(Keyring([verifier]))]
    with pytest.raises(UntrustedModel) as refused:
        HmacVerifier("another secret entirely").verify(b"m", SIGNER.sign(b"m"))
    shown.append(str(refused.value))
    generate_ed25519_keys(tmp_path / "k", tmp_path / "k.pub")
    ed = Ed25519Signer.from_file(tmp_path / "k")
    shown.append(repr(ed))
    private_body = (tmp_path / "k").read_text().splitlines()[1]
    assert all(SECRET not in text and private_body not in text for text in shown)
    assert SIGNER.key_id in repr(SIGNER)


def test_ed25519_servers_need_only_the_public_key(tmp_path):
    key_id = generate_ed25519_keys(tmp_path / "models.key", tmp_path / "models.pub")
    assert stat.S_IMODE(os.stat(tmp_path / "models.key").st_mode) == 0o600
    with pytest.raises(FileExistsError):
        generate_ed25519_keys(tmp_path / "models.key", tmp_path / "other.pub")
    signer = Ed25519Signer.from_file(tmp_path / "models.key")
    signature = signer.sign(b"statement")
    assert (signature.algorithm, signature.key_id) == ("ed25519", key_id)
    server = Ed25519Verifier.from_files(tmp_path / "models.pub")
    server.verify(b"statement", signature)
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        server.verify(b"tampered", signature)
    generate_ed25519_keys(tmp_path / "other.key", tmp_path / "other.pub")
    with pytest.raises(UntrustedModel, match="does not trust"):
        Ed25519Verifier.from_files(tmp_path / "other.pub").verify(b"statement", signature)
    with pytest.raises(UntrustedModel, match="only holds ed25519 keys"):
        server.verify(b"statement", SIGNER.sign(b"statement"))
    with pytest.raises(ValueError, match="keygen"):
        Ed25519Signer.from_file(tmp_path / "models.pub")


def test_keys_from_the_environment(monkeypatch, tmp_path):
    for var in ("LOOPLINE_SIGNING_KEY", "LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert signer_from_env() is None and verifier_from_env() is None
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", SECRET)
    assert signer_from_env().key_id == SIGNER.key_id
    verifier_from_env().verify(b"m", SIGNER.sign(b"m"))
    generate_ed25519_keys(tmp_path / "a.key", tmp_path / "a.pub")
    generate_ed25519_keys(tmp_path / "b.key", tmp_path / "b.pub")
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY_FILE", str(tmp_path / "a.key"))
    monkeypatch.setenv("LOOPLINE_VERIFY_KEY_FILE", str(tmp_path / "b.pub"))
    signer = signer_from_env()
    assert signer.algorithm == "ed25519"  # a key pair wins over the shared secret
    ring = verifier_from_env()
    ring.verify(b"m", signer.sign(b"m"))  # its own public half
    ring.verify(b"m", Ed25519Signer.from_file(tmp_path / "b.key").sign(b"m"))
    ring.verify(b"m", SIGNER.sign(b"m"))
    assert len(ring.trusts()) == 3
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", "short")
    with pytest.raises(ValueError, match="LOOPLINE_SIGNING_KEY is too short"):
        verifier_from_env()


def test_pickles_are_never_unpickled_unverified(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with pytest.raises(UntrustedModel, match="runs code when it is loaded"):
        decode(pickle.dumps(Evil()), "pickle")
    assert not marker.exists()
    assert decode(pickle.dumps({"w": 1}), "pickle", verified=True) == {"w": 1}
    with pytest.raises(ValueError, match="unknown model format 'pkl'"):
        decode(b"", "pkl")


# -- refusal in the registry, on both backends -------------------------------------------


def test_a_tampered_artifact_byte_is_refused(log, backend):
    models, chunks = unique("models"), unique("artifacts")
    for topic in (models, chunks):
        log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    registry = ModelRegistry(log, signer=SIGNER, topic=models, artifacts_topic=chunks)
    name = unique("churn")
    version = publish(registry, name, b"the real model")
    # the attacker overwrites the chunk with a flipped byte
    write_raw(log, chunks, f"{name}/{version.artifact_id}/0", b"the real modeL")
    # until compaction the first copy may still be read: it verifies; the tampered one never
    with contextlib.suppress(UntrustedModel):  # the embedded log may have compacted already
        assert registry.load_artifact(version) == b"the real model"
    # once compacted only the tampered copy is left, and it is refused
    compact_now(log, backend, chunks)
    with pytest.raises(UntrustedModel) as refused:
        ModelRegistry(log, signer=SIGNER, topic=models, artifacts_topic=chunks).load_artifact(
            version
        )
    message = str(refused.value)
    assert f"model '{name}' v1 refused" in message
    assert "is not the one that was signed" in message and "changed after publishing" in message
    registry.close()


def test_a_tampered_artifact_file_is_refused(log, tmp_path):
    registry = ModelRegistry(log, signer=SIGNER, max_in_log=10, artifact_dir=str(tmp_path))
    name = unique("churn")
    version = publish(registry, name, b"a model too large for the log")
    path = tmp_path / name / f"{version.sha256}.bin"
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UntrustedModel, match="not the one that was signed"):
        registry.load_artifact(version)
    path.unlink()
    with pytest.raises(ArtifactUnavailable, match="cannot read the artifact at file://"):
        registry.load_artifact(version)
    registry.close()


def test_tampered_metadata_is_refused(log):
    registry = ModelRegistry(log, signer=SIGNER)
    name = unique("churn")
    version = publish(registry, name)
    record = version.to_record()
    record["features"] = [["y", "float"]]  # same bytes, served with other inputs
    write_raw(
        log,
        registry.topic,
        version_key(name, 1, version.artifact_id),
        json.dumps(record).encode(),
    )
    reader = ModelRegistry(log, signer=SIGNER)
    swapped = reader.version(name, 1)
    assert swapped.features == (("y", "float"),)
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        reader.load_artifact(swapped)
    registry.close()
    reader.close()


def test_a_model_signed_with_another_key_is_refused(log):
    name = unique("churn")
    publisher = ModelRegistry(log, signer=HmacSigner("a key the servers do not hold"))
    version = publish(publisher, name)
    server = ModelRegistry(log, signer=SIGNER, verifier=SIGNER.verifier())
    with pytest.raises(UntrustedModel) as refused:
        server.load_artifact(server.version(name, 1))
    message = str(refused.value)
    assert f"model '{name}' v1 refused" in message
    assert f"hmac-sha256 key '{version.signature.key_id}'" in message
    assert f"trusts '{SIGNER.key_id}'" in message
    # a forged signature that names the trusted key id does not verify either
    record = version.to_record()
    record["signature"]["key_id"] = SIGNER.key_id
    write_raw(
        log, server.topic, version_key(name, 1, version.artifact_id), json.dumps(record).encode()
    )
    server.refresh()
    with pytest.raises(UntrustedModel, match="signature does not verify"):
        server.load_artifact(server.version(name, 1))
    publisher.close()
    server.close()


def test_an_unsigned_model_is_refused_and_the_current_one_keeps_serving(log):
    registry = ModelRegistry(log, signer=SIGNER)
    name = unique("churn")
    good = publish(registry, name, b"good")
    registry.promote(name, 1, "production")
    follower = AliasFollower(registry, name, "production")
    assert follower.refresh() and follower.model == b"good"

    # the attacker copies v1 as an unsigned v2 with other bytes and points production at it
    record = good.to_record()
    record.update(version=2, signature=None, artifact_id="f" * 32)
    write_raw(log, registry.topic, version_key(name, 2, "f" * 32), json.dumps(record).encode())
    write_raw(log, registry.artifacts_topic, f"{name}/{'f' * 32}/0", b"evil")
    registry.refresh()
    registry.promote(name, 2, "production")
    with pytest.raises(UntrustedModel, match="unsigned"):
        registry.load_artifact(registry.version(name, 2))
    assert follower.refresh() is False
    assert (follower.version.version, follower.model) == (1, b"good")
    assert "unsigned" in follower.refused[2]
    registry.close()


def test_without_a_verification_key_nothing_loads(log, monkeypatch):
    for var in ("LOOPLINE_SIGNING_KEY", "LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    publisher = ModelRegistry(log, signer=SIGNER)
    name = unique("churn")
    version = publish(publisher, name)
    server = ModelRegistry(log)
    with pytest.raises(UntrustedModel, match=r"trusts no signing key.*LOOPLINE_SIGNING_KEY"):
        server.load_artifact(version)
    publisher.close()
    server.close()


def test_ed25519_end_to_end(log, tmp_path):
    generate_ed25519_keys(tmp_path / "models.key", tmp_path / "models.pub")
    publisher = ModelRegistry(log, signer=Ed25519Signer.from_file(tmp_path / "models.key"))
    name = unique("churn")
    version = publish(publisher, name, pickle.dumps({"weights": [1.5, 2.5]}), format="pickle")
    server = ModelRegistry(log, verifier=Ed25519Verifier.from_files(tmp_path / "models.pub"))
    assert server.signer is None or server.signer.algorithm != "ed25519"
    assert server.load_model(server.version(name, 1)) == {"weights": [1.5, 2.5]}
    hmac_server = ModelRegistry(log, signer=SIGNER, verifier=SIGNER.verifier())
    with pytest.raises(UntrustedModel, match="signed with ed25519 but this process only holds"):
        hmac_server.load_model(version)
    for r in (publisher, server, hmac_server):
        r.close()
