"""Where an artifact lives is not signed, so it is never trusted (issue 13, item 13).

An attacker who can write to the models topic but holds no key may copy a
correctly signed version and change only its ``storage.uri``. A serving
process must then read nothing outside the artifact roots it was configured
with, nothing larger than the signed size, and nothing that is not a regular
file (a FIFO would block the model follower forever); and it must not log a
digest of a file it refused (a content oracle). Decision 0011.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from loopline.models import AliasFollower, ModelRegistry, UntrustedModel
from loopline.models.artifacts import ARTIFACT_ROOTS_ENV
from loopline.models.registry_records import version_key
from support import unique

from .test_signing import SIGNER, publish, write_raw

MODEL = b"a model too large for the log: " + bytes(range(256)) * 32  # 8 KB


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def topics() -> dict:
    return {"topic": unique("models"), "artifacts_topic": unique("artifacts")}


def published(log, store: Path, topics: dict):
    """A registry with a version (in a file under `store`) that the alias production points at."""
    registry = ModelRegistry(log, signer=SIGNER, max_in_log=1024, artifact_dir=str(store), **topics)
    name = unique("churn")
    version = publish(registry, name, MODEL)
    registry.promote(name, 1, "production")
    assert version.uri is not None and registry.load_artifact(version) == MODEL
    return registry, version


def tampered(log, registry, version, uri: str):
    """The signed version, as an attacker rewrote it: only `storage.uri` changed."""
    record = version.to_record()
    record["storage"] = {"uri": uri}
    key = version_key(version.name, version.version, version.artifact_id)
    write_raw(log, registry.topic, key, json.dumps(record).encode())
    registry.refresh()
    moved = registry.version(version.name, version.version)
    assert moved.uri == uri and moved.signature == version.signature
    return moved


def server(log, store: Path, topics: dict) -> ModelRegistry:
    """A serving process's registry: it trusts the key and reads artifacts under `store` only."""
    return ModelRegistry(log, signer=SIGNER, artifact_roots=[str(store)], **topics)


def digests(path: str) -> set[str]:
    """What a refusal must not tell of the file at `path`: any prefix of its SHA-256."""
    return {hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]}


@pytest.mark.parametrize("target", ["file:///etc/passwd", "../../../../../../etc/hostname"])
def test_a_signed_version_pointed_elsewhere_is_not_read(log, store, topics, target, caplog):
    registry, version = published(log, store, topics)
    moved = tampered(log, registry, version, target)
    reader = server(log, store, topics)
    with pytest.raises(UntrustedModel) as refused:
        reader.load_artifact(reader.version(moved.name, 1))
    message = str(refused.value)
    assert "outside the artifact roots" in message and str(store) in message, message
    assert ARTIFACT_ROOTS_ENV in message
    follower = AliasFollower(reader, moved.name, "production")
    assert follower.refresh() is False and follower.model is None
    # no digest of the file it refused, anywhere it reported
    shown = message + follower.refused[1] + caplog.text
    real = "/etc/passwd" if target.startswith("file:") else "/etc/hostname"
    for secret in digests(real):
        assert secret not in shown.replace(version.sha256[:12], ""), secret
    registry.close()
    reader.close()


def test_a_symlink_in_the_root_to_a_file_outside_is_not_read(log, store, topics):
    registry, version = published(log, store, topics)
    link = store / version.name / "link.bin"
    link.symlink_to("/etc/passwd")
    tampered(log, registry, version, link.as_uri())
    reader = server(log, store, topics)
    with pytest.raises(UntrustedModel, match="outside the artifact roots"):
        reader.load_artifact(reader.version(version.name, 1))
    registry.close()
    reader.close()


def test_a_file_larger_than_signed_is_refused_before_it_is_read(log, store, topics):
    registry, version = published(log, store, topics)
    path = Path(version.uri.removeprefix("file://"))
    with path.open("r+b") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: 300 MB that take no disk
    reader = server(log, store, topics)
    before = _bytes_read()
    with pytest.raises(UntrustedModel) as refused:
        reader.load_artifact(reader.version(version.name, 1))
    assert _bytes_read() - before < 1024 * 1024, "the 300 MB file was read"
    message = str(refused.value)
    assert f"not the signed size ({version.size:,} bytes)" in message, message
    assert str(300 * 1024 * 1024) not in message.replace(",", "")
    registry.close()
    reader.close()


def test_a_fifo_does_not_block_the_model_follower(log, store, topics):
    registry, version = published(log, store, topics)
    path = Path(version.uri.removeprefix("file://"))
    path.unlink()
    os.mkfifo(path)
    reader = server(log, store, topics)
    follower = AliasFollower(reader, version.name, "production")
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(follower.refresh()), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader so the test process can end
        with open(path, "wb"):
            pass
        worker.join(timeout=5)
        pytest.fail("the model follower blocked on a FIFO")
    assert done == [False] and "not a regular file" in follower.refused[1]
    registry.close()
    reader.close()


def test_roots_come_from_the_environment(log, store, topics, monkeypatch, tmp_path):
    registry, version = published(log, store, topics)
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv(ARTIFACT_ROOTS_ENV, str(elsewhere))
    outsider = ModelRegistry(log, signer=SIGNER, **topics)
    with pytest.raises(UntrustedModel, match="outside the artifact roots"):
        outsider.load_artifact(version)
    monkeypatch.setenv(ARTIFACT_ROOTS_ENV, f"{elsewhere},{store}")
    trusting = ModelRegistry(log, signer=SIGNER, **topics)
    assert trusting.load_artifact(version) == MODEL
    registry.close()
    outsider.close()
    trusting.close()


def _bytes_read() -> int:
    """Bytes this process has read through read() calls (Linux /proc/self/io, rchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")
