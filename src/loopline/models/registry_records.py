"""What the model registry writes to the log: versions, alias changes, and their keys.

Every record of ``_loopline_models`` has a key that compaction can never
merge with another one that must survive (docs/decisions/0011):

- ``version/<model>/<version>/<artifact id>``: a version (JSON). The artifact
  id is unique per publish attempt, so two publishers racing for the same
  version number write two keys; the first in log order holds the number.
- ``alias/<model>/<alias>/<event id>``: one change of an alias (JSON). Keyed
  per change, not per alias, so compaction keeps the whole history. Signed
  like a version, over its own statement (`AliasRecord.statement`, which names
  the event id, so a signature is good for one move only: docs/decisions/0038).

Chunks of artifacts live in ``_loopline_model_artifacts`` keyed
``<model>/<artifact id>/<chunk index>``.

>>> version_key("churn", 3, "ab12")
'version/churn/3/ab12'
>>> parse_key("alias/churn/production/e1")
('alias', 'churn', 'production', 'e1')
>>> check_name("churn model", "model")
Traceback (most recent call last):
...
ValueError: invalid model name 'churn model': use 1 to 200 letters, digits, '.', '_' or '-'
"""

from __future__ import annotations

import getpass
import json
import math
import os
import re
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from loopline.models.signing import Signature, Signer

STATEMENT_PREFIX = b"loopline model version statement v1\n"
ALIAS_STATEMENT_PREFIX = b"loopline model alias statement v1\n"
"""Distinct from a version's: a version's signature never verifies as a move's, nor back."""
CODE_VERSION_ENV = "LOOPLINE_CODE_VERSION"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def detect_code_version() -> str | None:
    """``$LOOPLINE_CODE_VERSION``, else the git commit here (``-dirty`` if changed), else None."""
    if os.environ.get(CODE_VERSION_ENV):
        return os.environ[CODE_VERSION_ENV]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = status.returncode == 0 and bool(status.stdout.strip())
    return head.stdout.strip() + ("-dirty" if dirty else "")


def who() -> str:
    """Who publishes: user@host (the host alone where there is no user name)."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in some containers
        return socket.gethostname()


def check_name(name: str, what: str) -> str:
    """`name` if it can name a model or an alias (it becomes part of record keys)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use 1 to 200 letters, digits, '.', '_' or '-'"
        )
    if what == "alias" and name.isdigit():
        raise ValueError(f"invalid alias name {name!r}: an alias cannot be a number (a version)")
    return name


def version_key(name: str, version: int, artifact_id: str) -> str:
    return f"version/{name}/{version}/{artifact_id}"


def alias_key(name: str, alias: str, event_id: str) -> str:
    return f"alias/{name}/{alias}/{event_id}"


def parse_key(key: str) -> tuple[str, str, str, str] | None:
    parts = key.split("/")
    if len(parts) != 4 or parts[0] not in ("version", "alias"):
        return None
    return parts[0], parts[1], parts[2], parts[3]


def canonical(value: Any) -> bytes:
    """The one JSON text of `value` that signatures are computed over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _enc_hook(value: Any) -> Any:
    # numpy scalars and arrays (metrics and parameters often are) become plain numbers.
    for attribute in ("tolist", "item"):
        if hasattr(value, attribute):
            return getattr(value, attribute)()
    raise TypeError(f"cannot record a value of type {type(value).__name__} as JSON")


def plain(value: Any, what: str) -> Any:
    """`value` as plain JSON data (dicts, lists, str, numbers, None); NaN becomes None."""
    try:
        return _finite(msgspec.to_builtins(value, enc_hook=_enc_hook, str_keys=True))
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"the {what} cannot be recorded: {exc}") from None


def plain_features(features: Sequence[tuple[str, str]] | Mapping[str, str]) -> tuple:
    """The feature list as a tuple of ``(name, type)`` pairs of strings, in model input order."""
    items = features.items() if isinstance(features, Mapping) else features
    out = []
    for item in items:
        try:
            name, kind = item
        except (TypeError, ValueError):
            raise ValueError(
                f"each feature must be a (name, type) pair, e.g. ('clicks_1h', 'int'), not {item!r}"
            ) from None
        if not isinstance(name, str) or not isinstance(kind, str) or not name:
            raise ValueError(f"a feature's name and type must be strings, not {item!r}")
        out.append((name, kind))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"the feature list names {', '.join(duplicates)} more than once")
    return tuple(out)


@dataclass(frozen=True)
class ModelVersion:
    """One published version of a model: what it is, what it was built from, and its signature.

    The artifact itself is not held here: `ModelRegistry.load_artifact` reads
    and verifies it. `uri` is set when the artifact lives outside the log;
    otherwise it is `chunks` records of the artifacts topic.
    """

    name: str
    version: int
    created_at: int
    format: str
    trainer: str
    params: dict = field(hash=False)
    features: tuple[tuple[str, str], ...]
    metrics: dict = field(hash=False)
    manifest: dict | None = field(hash=False)
    code_version: str | None
    sha256: str
    size: int
    published_by: str
    signature: Signature | None
    artifact_id: str
    chunks: int = 0
    artifact_time: int = 0
    uri: str | None = None
    profile: dict | None = field(default=None, hash=False)  # loopline.models.profiles.Profile

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]

    def signed_fields(self) -> dict[str, Any]:
        """Everything the signature covers: all but the signature and where the bytes are.

        The training profile is covered when there is one; a version published
        without one (before profiles, or online) signs the same statement as before.
        """
        signed = {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "format": self.format,
            "trainer": self.trainer,
            "params": self.params,
            "features": [list(f) for f in self.features],
            "metrics": self.metrics,
            "manifest": self.manifest,
            "code_version": self.code_version,
            "sha256": self.sha256,
            "size": self.size,
            "published_by": self.published_by,
        }
        if self.profile is not None:
            signed["profile"] = self.profile
        return signed

    def statement(self) -> bytes:
        """The bytes that are signed."""
        return STATEMENT_PREFIX + canonical(self.signed_fields())

    def to_record(self) -> dict[str, Any]:
        storage: dict[str, Any] = (
            {"uri": self.uri}
            if self.uri is not None
            else {"chunks": self.chunks, "artifact_time": self.artifact_time}
        )
        return {
            "kind": "version",
            **self.signed_fields(),
            "artifact_id": self.artifact_id,
            "storage": storage,
            "signature": self.signature.to_dict() if self.signature else None,
        }

    @classmethod
    def from_record(cls, entry: VersionRecord) -> ModelVersion:
        """The version a decoded record of the models topic holds (see `decode_record`)."""
        return cls(
            name=entry.name,
            version=entry.version,
            created_at=entry.created_at,
            format=entry.format,
            trainer=entry.trainer,
            params=entry.params or {},
            features=tuple(entry.features),
            metrics=entry.metrics or {},
            manifest=entry.manifest,
            code_version=entry.code_version,
            sha256=entry.sha256,
            size=entry.size,
            published_by=entry.published_by,
            signature=entry.signature.signature() if entry.signature else None,
            artifact_id=entry.artifact_id,
            chunks=entry.storage.chunks,
            artifact_time=entry.storage.artifact_time,
            uri=entry.storage.uri,
            profile=entry.profile,
        )

    def describe(self) -> dict[str, Any]:
        """The version as shown to people (``loopline models show``): no artifact bytes."""
        out = {k: v for k, v in self.to_record().items() if k != "kind"}
        out["features"] = [{"name": n, "type": t} for n, t in self.features]
        return out


# -- the records as they travel: typed, so a malformed one fails to decode as a whole ------


class _Storage(msgspec.Struct, frozen=True, kw_only=True):
    chunks: int = 0
    artifact_time: int = 0
    uri: str | None = None


class _SignatureRecord(msgspec.Struct, frozen=True):
    algorithm: str
    key_id: str
    value: str

    def signature(self) -> Signature:
        return Signature(self.algorithm, self.key_id, self.value)


class VersionRecord(msgspec.Struct, frozen=True, kw_only=True, tag="version", tag_field="kind"):
    """A ``version/...`` record of the models topic, as written by `ModelVersion.to_record`."""

    name: str
    version: int
    created_at: int
    format: str
    trainer: str
    params: dict[str, Any] | None = None
    features: list[tuple[str, str]]
    metrics: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    code_version: str | None = None
    sha256: str
    size: int
    published_by: str = ""
    artifact_id: str
    storage: _Storage = _Storage()
    signature: _SignatureRecord | None = None
    profile: dict[str, Any] | None = None


class AliasRecord(msgspec.Struct, frozen=True, kw_only=True, tag="alias", tag_field="kind"):
    """An ``alias/...`` record of the models topic: one move of an alias, and its signature.

    Records written before moves were signed have no signature (and may lack
    `name` and `alias`): they decode, and a process that verifies refuses them.

    >>> from loopline.models.signing import HmacSigner
    >>> signer = HmacSigner(b"a shared secret of at least 16 bytes")
    >>> move = AliasRecord(name="churn", alias="production", version=2, action="promote",
    ...     previous=1, time=5, by="ops@host").signed(signer, "e1")
    >>> signer.verifier().verify(move.statement("e1"), move.signature.signature())
    >>> signer.verifier().verify(move.statement("e2"), move.signature.signature())
    Traceback (most recent call last):
    ...
    loopline.models.signing.UntrustedModel: the signature does not verify: ...
    """

    name: str = ""
    alias: str = ""
    version: int
    action: Literal["promote", "rollback"]
    previous: int | None = None
    time: int
    by: str = ""
    reason: str | None = None
    signature: _SignatureRecord | None = None

    def signed_fields(self, event_id: str) -> dict[str, Any]:
        """Everything the signature covers: the whole move, and the event id of its key."""
        return {
            "name": self.name,
            "alias": self.alias,
            "event_id": event_id,
            "version": self.version,
            "action": self.action,
            "previous": self.previous,
            "time": self.time,
            "by": self.by,
            "reason": self.reason,
        }

    def statement(self, event_id: str) -> bytes:
        """The bytes that are signed (with a prefix of their own: see `ALIAS_STATEMENT_PREFIX`)."""
        return ALIAS_STATEMENT_PREFIX + canonical(self.signed_fields(event_id))

    def signed(self, signer: Signer, event_id: str) -> AliasRecord:
        """This move, signed by `signer` as the move of event `event_id`."""
        made = signer.sign(self.statement(event_id))
        signature = _SignatureRecord(made.algorithm, made.key_id, made.value)
        return msgspec.structs.replace(self, signature=signature)

    def to_record(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


_decode = msgspec.json.Decoder(VersionRecord | AliasRecord).decode


def decode_record(value: bytes) -> VersionRecord | AliasRecord:
    """The record `value` holds; `msgspec.ValidationError` or `DecodeError` if it is not one.

    >>> decode_record(b'{"kind": "alias", "version": 2, "action": "promote", "time": 1}').version
    2
    >>> decode_record(b"[]")
    Traceback (most recent call last):
    ...
    msgspec.ValidationError: Expected `object`, got `array`
    """
    return _decode(value)


@dataclass(frozen=True)
class AliasChange:
    """An alias moved: at `time_ms` it started to point at `version` (`previous` before).

    `key_id` names the key that signed the move (None: unsigned); `verified`
    says this process checked that signature. A move this process refused
    (unsigned, tampered with, signed by a key it does not trust, or older
    than the alias's current move) stays in the history with the reason in
    `refused`, and the alias did not move.
    """

    time_ms: int
    version: int
    previous: int | None
    action: Literal["promote", "rollback"]
    by: str = ""
    reason: str | None = None
    key_id: str | None = None
    verified: bool = False
    refused: str | None = None

    @property
    def status(self) -> str:
        """The move as a person reads it: verified, not checked here, or refused and why.

        >>> AliasChange(1, 2, 1, "promote", key_id="k1", verified=True).status
        'verified'
        >>> AliasChange(1, 2, 1, "promote", refused="unsigned").status
        'refused: unsigned'
        """
        if self.refused is not None:
            return f"refused: {self.refused}"
        return "verified" if self.verified else "not checked (no verification key)"


@dataclass(frozen=True)
class RegistryEvent:
    """Something that happened in the registry, in log order: a version or an alias change."""

    kind: Literal["version", "alias"]
    name: str
    version: int
    alias: str | None
    time_ms: int
