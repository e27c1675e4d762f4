"""The model registry, kept in the log: versions, aliases and their history, signed artifacts.

Every model version and every move of an alias (``production``,
``candidate``, any name) is a record of the compacted topic
``_loopline_models``; artifacts travel in ``_loopline_model_artifacts`` in
chunks (or, above a size limit, in a file or object store whose URI the
version records). Every process reading the topics sees every change in the
same order, compaction never loses history, and an artifact is handed out
only after its signature and SHA-256 verify (docs/decisions/0011).

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.models.signing import HmacSigner
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> signer = HmacSigner(b"a shared secret of at least 16 bytes")
>>> registry = ModelRegistry(log, signer=signer, verifier=signer.verifier())
>>> v1 = registry.publish("churn", b"model bytes", format="bytes", trainer="demo",
...     params={"depth": 3}, features=[("clicks_1h", "int")], metrics={"auc": 0.71})
>>> v2 = registry.publish("churn", b"better model", format="bytes", trainer="demo",
...     params={"depth": 4}, features=[("clicks_1h", "int")], metrics={"auc": 0.74})
>>> v1.version, v2.version
(1, 2)
>>> _ = registry.promote("churn", 1, "production")
>>> _ = registry.promote("churn", 2, "production")
>>> registry.alias("churn", "production").version
2
>>> _ = registry.rollback("churn", "production")
>>> registry.load_artifact(registry.alias("churn", "production"))
b'model bytes'
>>> [(c.action, c.version) for c in registry.alias_history("churn", "production")]
[('promote', 1), ('promote', 2), ('rollback', 1)]
>>> registry.close(); log.close()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from loopline.log import Log, TopicConfig, TopicExists
from loopline.models import artifacts
from loopline.models.artifacts import ArtifactUnavailable
from loopline.models.artifacts_log import LogArtifacts
from loopline.models.registry_records import (
    AliasChange,
    AliasRecord,
    ModelVersion,
    RegistryEvent,
    alias_key,
    check_name,
    detect_code_version,
    plain,
    plain_features,
    version_key,
    who,
)
from loopline.models.registry_view import RegistryView
from loopline.models.signing import (
    SIGNING_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    ModelLoadError,
    Signer,
    UntrustedModel,
    Verifier,
    signer_from_env,
    verifier_from_env,
)
from loopline.stream.table import Table

MODELS_TOPIC = "_loopline_models"
"""The compacted topic of model versions and alias changes (history kept: one key per change)."""
ARTIFACTS_TOPIC = "_loopline_model_artifacts"
"""The compacted topic of model artifacts, in chunks (larger ones live under an artifact dir)."""
_MAX_PUBLISH_ATTEMPTS = 20

logger = logging.getLogger(__name__)


class ModelNotFound(KeyError):
    """No model (or no such version) of that name."""

    def __str__(self) -> str:
        return str(self.args[0])


class ModelRegistryError(Exception):
    """A registry operation that cannot be done as asked (the message says what to do)."""


class SigningKeyMissing(ModelRegistryError):
    """Publishing needs a signing key, and none was given or configured."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ModelRegistry:
    """The model registry kept in `log` (see the module docstring).

    `signer` signs what `publish`, `promote` and `rollback` write, and `verifier`
    checks what `load_artifact` reads and which alias moves apply (a move it
    refuses stays in `alias_history` with the reason); left out, both come from the environment
    (``LOOPLINE_SIGNING_KEY``, ``LOOPLINE_SIGNING_KEY_FILE``,
    ``LOOPLINE_VERIFY_KEY_FILE``: see `loopline.models.signing`), and a
    registry with a signer but no verifier trusts its own signer's key.

    The models topic is read through `table` (a `loopline.stream.table.Table`):
    a record that does not decode is logged, counted in ``table.skipped`` and
    passed over, never a stop (`loopline.models.registry_view`).

    Artifacts up to `max_in_log` bytes travel in the log in `chunk_size`
    pieces; larger ones are written under `artifact_dir` (a directory,
    ``file://`` URL or, with fsspec installed, an object-store URL; default
    ``$LOOPLINE_ARTIFACT_DIR``). Such an artifact is read only under
    `artifact_dir` or one of `artifact_roots` (and ``$LOOPLINE_ARTIFACT_ROOTS``):
    its location is not signed (decision 0011).
    """

    def __init__(
        self,
        log: Log,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        artifact_dir: str | None = None,
        artifact_roots: Sequence[str] = (),
        max_in_log: int = artifacts.MAX_IN_LOG,
        chunk_size: int = artifacts.CHUNK_SIZE,
        topic: str = MODELS_TOPIC,
        artifacts_topic: str = ARTIFACTS_TOPIC,
    ) -> None:
        self.log = log
        self.signer = signer if signer is not None else signer_from_env()
        if verifier is None:
            verifier = verifier_from_env()
        if verifier is None and self.signer is not None:
            verifier = self.signer.verifier()
        self.verifier = verifier
        self.artifact_dir = artifact_dir or os.environ.get(artifacts.ARTIFACT_DIR_ENV) or None
        self.artifact_roots = artifacts.artifact_roots(self.artifact_dir, *artifact_roots)
        self.max_in_log = max_in_log
        self.chunk_size = chunk_size
        self.topic = topic
        self.artifacts_topic = artifacts_topic
        self._lock = threading.RLock()
        self._view = RegistryView(topic, self.verifier)
        # The view's own dicts, named as the registry reads them.
        self._versions = self._view.versions
        self._aliases = self._view.aliases
        self._alias_events = self._view.alias_events
        self._events = self._view.events
        self._cursor = 0
        for name in (topic, artifacts_topic):
            with contextlib.suppress(TopicExists):
                log.create_topic(name, TopicConfig(partitions=1, compact=True))
            config = log.describe_topic(name).config
            policy = config.extra.get("cleanup.policy", config.cleanup_policy)
            if not config.compact or "delete" in policy:
                raise ModelRegistryError(
                    f"topic {name!r} has cleanup.policy={policy}: the model registry needs a "
                    "compacted topic (cleanup.policy=compact), or retention would delete model "
                    "versions and alias history; give another topic or change its policy"
                )
        self.table = Table(log, topic, self._view.apply)
        self._producer = log.producer()
        self._chunks = LogArtifacts(
            log, artifacts_topic, chunk_size=chunk_size, producer=self._producer
        )
        self._read()

    # -- reading the topic -------------------------------------------------------------

    def _read(self) -> None:
        """Apply every record appended since the last read, in log order."""
        with self._lock:
            self.table.refresh()

    def refresh(self) -> list[RegistryEvent]:
        """Read what was appended since; return the changes since the last `refresh` call.

        A serving process calls this (or `follow`) to see new versions and alias
        changes, in the order every other process sees them.
        """
        with self._lock:
            self._read()
            new = self._events[self._cursor :]
            self._cursor = len(self._events)
            return new

    def follow(
        self,
        callback: Callable[[RegistryEvent], None],
        *,
        stop: threading.Event | None = None,
        interval: float = 1.0,
    ) -> None:
        """Call `callback` with every change, in log order, until `stop` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            for event in self.refresh():
                callback(event)
            stop.wait(interval)

    def _append(self, key: str, entry: dict | None) -> None:
        value = None if entry is None else json.dumps(entry).encode("utf-8")
        self._producer.send(self.topic, value, key.encode("utf-8"))
        self._producer.flush()

    # -- versions ----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Names of every model with at least one version."""
        with self._lock:
            return sorted(n for n, v in self._versions.items() if v)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of model `name`, oldest first."""
        with self._lock:
            if not self._versions.get(name):
                self._read()
            held = self._versions.get(name)
            if not held:
                known = ", ".join(self.names()) or "none yet"
                raise ModelNotFound(
                    f"no model named {name!r} in {self.topic} (models: {known}); "
                    "publish a version with a trainer or ModelRegistry.publish"
                )
            return [held[v] for v in sorted(held)]

    def version(self, name: str, version: int) -> ModelVersion:
        """Version `version` of model `name`."""
        versions = self.versions(name)
        for v in versions:
            if v.version == version:
                return v
        raise ModelNotFound(
            f"model {name!r} has no version {version} "
            f"(versions: {', '.join(str(v.version) for v in versions)})"
        )

    def latest(self, name: str) -> ModelVersion:
        """The newest version of model `name`."""
        return self.versions(name)[-1]

    def publish(
        self,
        name: str,
        artifact: bytes,
        *,
        format: str,
        trainer: str,
        params: Mapping[str, Any] | None = None,
        features: Sequence[tuple[str, str]] | Mapping[str, str],
        metrics: Mapping[str, Any] | None = None,
        manifest: Any = None,
        code_version: str | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Publish `artifact` as the next version of model `name`, signed; return the version.

        `features` lists the model's inputs in order with their types;
        `manifest` is the dataset's (a dict or `loopline.features` Manifest);
        `code_version` defaults to `detect_code_version()`; `profile` is the training
        profile (`loopline.models.profiles.Profile.to_dict()`), signed with the rest. Publishers may
        race: each attempt writes a key of its own, the first in log order
        holds the number, and the others publish again as the next number.
        """
        check_name(name, "model")
        check_name(format, "format")
        if not isinstance(artifact, bytes | bytearray | memoryview):
            raise TypeError(
                f"the artifact must be bytes, not {type(artifact).__name__}: "
                "encode the model first (loopline.models.artifacts.encode)"
            )
        data = bytes(artifact)
        if not data:
            raise ValueError(f"the artifact of model {name!r} is empty")
        if self.signer is None:
            raise SigningKeyMissing(
                f"cannot publish model {name!r} unsigned: set {SIGNING_KEY_ENV} (a shared "
                f"HMAC secret) or {SIGNING_KEY_FILE_ENV} (an Ed25519 private key from "
                "`loopline models keygen`), or pass signer= to ModelRegistry"
            )
        base = ModelVersion(
            name=name,
            version=0,
            created_at=_now_ms(),
            format=format,
            trainer=str(trainer),
            params=plain(dict(params or {}), "parameters"),
            features=plain_features(features),
            metrics=plain(dict(metrics or {}), "metrics"),
            manifest=plain(manifest, "dataset manifest") if manifest is not None else None,
            code_version=code_version if code_version is not None else detect_code_version(),
            sha256=artifacts.sha256(data),
            size=len(data),
            published_by=who(),
            signature=None,
            artifact_id=uuid.uuid4().hex,
            profile=plain(dict(profile), "training profile") if profile is not None else None,
        )
        base = self._store_artifact(base, data)
        with self._lock:
            for _ in range(_MAX_PUBLISH_ATTEMPTS):
                self._read()
                held = self._versions.get(name, {})
                candidate = replace(base, version=max(held, default=0) + 1)
                candidate = replace(candidate, signature=self.signer.sign(candidate.statement()))
                key = version_key(name, candidate.version, candidate.artifact_id)
                self._append(key, candidate.to_record())
                self._read()
                holder = self._versions.get(name, {}).get(candidate.version)
                if holder is None:
                    raise ModelRegistryError(
                        f"published model {name!r} v{candidate.version} but could not read it "
                        f"back from {self.topic} within 30 s; check the log, then list the "
                        "versions before publishing again"
                    )
                if holder.artifact_id == candidate.artifact_id:
                    return holder
                self._append(key, None)  # lost the race: withdraw the claim, try the next number
        raise ModelRegistryError(
            f"could not publish model {name!r}: {_MAX_PUBLISH_ATTEMPTS} other publishers took "
            "the next version number first; try again"
        )

    def _store_artifact(self, version: ModelVersion, data: bytes) -> ModelVersion:
        if len(data) > self.max_in_log:
            if not self.artifact_dir:
                raise ModelRegistryError(
                    f"the artifact of model {version.name!r} is {len(data)} bytes, more than the "
                    f"{self.max_in_log} the log carries: give ModelRegistry an artifact_dir "
                    f"(or set {artifacts.ARTIFACT_DIR_ENV}) to store it in a file or object store"
                )
            known = artifacts.FORMATS.get(version.format)
            ext = known.extension if known else ".bin"
            uri = artifacts.write_outside(
                self.artifact_dir, f"{version.name}/{version.sha256}{ext}", data
            )
            return replace(version, uri=uri)
        chunks, written = self._chunks.write(version.name, version.artifact_id, data)
        return replace(version, chunks=chunks, artifact_time=written)

    # -- reading artifacts ---------------------------------------------------------------

    def load_artifact(self, version: ModelVersion) -> bytes:
        """The artifact of `version`, only if its signature and SHA-256 verify.

        Raises `UntrustedModel` (unsigned, tampered, unknown key, no key
        configured) or `ArtifactUnavailable`, saying which and what to do;
        never returns bytes that were not verified.
        """
        what = f"model {version.name!r} v{version.version}"
        if self.verifier is None:
            raise UntrustedModel(
                f"{what} refused: this process trusts no signing key; set {SIGNING_KEY_ENV} "
                "(the shared HMAC secret) or LOOPLINE_VERIFY_KEY_FILE (Ed25519 public keys)"
            )
        try:
            self.verifier.verify(version.statement(), version.signature)
        except UntrustedModel as exc:
            raise UntrustedModel(f"{what} refused: {exc}") from None
        try:
            if version.uri is not None:
                data = artifacts.read_outside(version.uri, version.size, self.artifact_roots)
            else:
                data = self._chunks.read(
                    version.name, version.artifact_id, version.chunks, version.artifact_time
                )
        except ArtifactUnavailable as exc:
            raise ArtifactUnavailable(f"{what}: {exc}") from None
        except UntrustedModel as exc:
            raise UntrustedModel(f"{what} refused: {exc}") from None
        # Nothing of the bytes read (size, digest) is told: they may be a file not meant to be.
        if len(data) != version.size or artifacts.sha256(data) != version.sha256:
            raise UntrustedModel(
                f"{what} refused: its artifact is not the one that was signed ({version.size} "
                f"bytes, sha256 {version.sha256[:12]}...): it was changed after publishing; "
                "publish it again"
            )
        return data

    def load_model(self, version: ModelVersion) -> Any:
        """The model object of `version`: `load_artifact`, then decoded by its format."""
        return artifacts.decode(self.load_artifact(version), version.format, verified=True)

    # -- aliases -----------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        """The version each alias of model `name` points at now."""
        with self._lock:
            return {a: s.stack[-1] for a, s in self._aliases.get(name, {}).items() if s.stack}

    def alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version `alias` of model `name` points at now (None if it points nowhere)."""
        with self._lock:
            state = self._aliases.get(name, {}).get(alias)
            if state is None or not state.stack:
                return None
            return self.version(name, state.stack[-1])

    def alias_history(self, name: str, alias: str) -> list[AliasChange]:
        """Every move of `alias` in log order, refused ones too (`AliasChange.refused`)."""
        with self._lock:
            state = self._aliases.get(name, {}).get(alias)
            return list(state.history) if state else []

    def at(self, name: str, alias: str, when_ms: int) -> ModelVersion | None:
        """The version `alias` pointed at, at `when_ms` (ms since the epoch), or None."""
        held = None
        for change in self.alias_history(name, alias):
            if change.time_ms > when_ms:
                break
            if change.refused is None:
                held = change.version
        return None if held is None else self.version(name, held)

    def promote(
        self, name: str, version: int, alias: str, *, reason: str | None = None
    ) -> AliasChange:
        """Point `alias` of model `name` at `version` (a no-op if it points there already)."""
        check_name(alias, "alias")
        with self._lock:
            self._read()
            self.version(name, version)  # must exist
            state = self._aliases.get(name, {}).get(alias)
            if state and state.stack and state.stack[-1] == version:
                return state.current() or state.history[-1]
            return self._move(name, alias, version, "promote", reason)

    def rollback(self, name: str, alias: str, *, reason: str | None = None) -> AliasChange:
        """Point `alias` back at the version it held before the current one."""
        check_name(alias, "alias")
        with self._lock:
            self._read()
            state = self._aliases.get(name, {}).get(alias)
            if state is None or len(state.stack) < 2:
                held = "it was never set"
                if state and state.stack:
                    held = f"it has only held v{state.stack[-1]}"
                raise ModelRegistryError(
                    f"alias {alias!r} of model {name!r} has nothing to roll back to: {held}; "
                    f"point it at a version with `loopline models promote {name} VERSION "
                    f"--alias {alias}`"
                )
            return self._move(name, alias, state.stack[-2], "rollback", reason)

    def _move(
        self, name: str, alias: str, version: int, action: str, reason: str | None
    ) -> AliasChange:
        """Write the move, signed (without a signer: unsigned); the change as read back."""
        state = self._aliases.get(name, {}).get(alias)
        current = state.current() if state else None
        event_id = uuid.uuid4().hex
        move = AliasRecord(
            name=name, alias=alias, version=version, action=action, by=who(), reason=reason,
            previous=state.stack[-1] if state and state.stack else None,
            time=max(_now_ms(), current.time_ms if current else 0),  # never older than it
        )  # fmt: skip
        if self.signer is None:  # only processes that verify nothing follow it
            logger.warning(
                "model %r: alias %r moved to v%d unsigned (no signing key): processes that "
                "verify refuse it; set %s or %s", name, alias, version, SIGNING_KEY_ENV,
                SIGNING_KEY_FILE_ENV,
            )  # fmt: skip
        else:
            move = move.signed(self.signer, event_id)
        self._append(alias_key(name, alias, event_id), move.to_record())
        self._read()
        return self._alias_events[event_id]

    def close(self) -> None:
        self.table.close()
        self._chunks.close()
        self._producer.close()


__all__ = [
    "ARTIFACTS_TOPIC",
    "MODELS_TOPIC",
    "AliasChange",
    "ModelLoadError",
    "ModelNotFound",
    "ModelRegistry",
    "ModelRegistryError",
    "ModelVersion",
    "RegistryEvent",
    "SigningKeyMissing",
    "detect_code_version",
]
