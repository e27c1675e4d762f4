"""Signatures of model versions: HMAC-SHA256 with a shared key, or Ed25519 key pairs.

A model version is signed over its *statement*: the SHA-256 of the artifact
together with the version's identifying metadata (name, version, format,
feature list, trainer, parameters, metrics, lineage). Changing one byte of the
artifact or one field of the metadata breaks the signature
(docs/decisions/0011).

Two kinds of key, recorded in every signature with the key's id, so a process
refuses clearly a version signed by a key it does not know:

- ``hmac-sha256``: one shared secret (``LOOPLINE_SIGNING_KEY``); whoever can
  verify can also sign. Simple, fine for one team on one host.
- ``ed25519``: a key pair (``loopline models keygen``); publishers hold the
  private key (``LOOPLINE_SIGNING_KEY_FILE``), servers only public keys
  (``LOOPLINE_VERIFY_KEY_FILE``), so a compromised server cannot publish a
  model. Recommended for anything that runs on more than one machine.

>>> signer = HmacSigner(b"a shared secret of at least 16 bytes")
>>> signature = signer.sign(b"statement")
>>> signature.algorithm, signature.key_id == signer.key_id
('hmac-sha256', True)
>>> HmacVerifier(b"a shared secret of at least 16 bytes").verify(b"statement", signature)
>>> HmacVerifier(b"a shared secret of at least 16 bytes").verify(b"statement!", signature)
Traceback (most recent call last):
...
loopline.models.signing.UntrustedModel: the signature does not verify: the artifact or its \
metadata was changed after it was signed, or it was signed with another key of the same id
>>> signer  # the secret is never shown
HmacSigner(key_id='...')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

HMAC = "hmac-sha256"
ED25519 = "ed25519"
ALGORITHMS = (HMAC, ED25519)

SIGNING_KEY_ENV = "LOOPLINE_SIGNING_KEY"
SIGNING_KEY_FILE_ENV = "LOOPLINE_SIGNING_KEY_FILE"
VERIFY_KEY_FILE_ENV = "LOOPLINE_VERIFY_KEY_FILE"
MIN_HMAC_KEY_BYTES = 16

_HOW_TO_CONFIGURE = (
    f"set {SIGNING_KEY_ENV} (a shared HMAC secret) or {VERIFY_KEY_FILE_ENV} "
    "(Ed25519 public keys from `loopline models keygen`)"
)


class ModelLoadError(Exception):
    """A model version that cannot be loaded; whoever asked keeps the model it has."""


class UntrustedModel(ModelLoadError):
    """A model version refused: unsigned, tampered with, or signed by a key not trusted here."""


@dataclass(frozen=True)
class Signature:
    """A signature as recorded in a model version: algorithm, key id and value (base64)."""

    algorithm: str
    key_id: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"algorithm": self.algorithm, "key_id": self.key_id, "value": self.value}

    @classmethod
    def from_dict(cls, data: dict | None) -> Signature | None:
        if not data:
            return None
        return cls(str(data["algorithm"]), str(data["key_id"]), str(data["value"]))


@runtime_checkable
class Signer(Protocol):
    """Signs statements with one key."""

    algorithm: str
    key_id: str

    def sign(self, message: bytes) -> Signature: ...
    def verifier(self) -> Verifier: ...


@runtime_checkable
class Verifier(Protocol):
    """Checks signatures; `verify` returns None or raises `UntrustedModel` saying why."""

    def verify(self, message: bytes, signature: Signature | None) -> None: ...
    def trusts(self) -> list[tuple[str, str]]: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hmac_key_id(key: bytes) -> str:
    # A keyed digest, not a plain hash of the key: the id says nothing about the secret.
    return hmac.new(key, b"loopline key id", hashlib.sha256).hexdigest()[:16]


def _hmac_key(key: bytes | str, what: str) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_HMAC_KEY_BYTES:
        raise ValueError(
            f"{what} is too short ({len(raw)} bytes): use at least {MIN_HMAC_KEY_BYTES} "
            "random bytes, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return raw


def _check(signature: Signature | None, algorithm: str, known: Iterable[str]) -> None:
    """Refuse a missing signature, another algorithm, or an unknown key id, saying which."""
    if signature is None:
        raise UntrustedModel(
            "the version is unsigned: publish it again with a signing key "
            f"({SIGNING_KEY_ENV} or {SIGNING_KEY_FILE_ENV})"
        )
    if signature.algorithm != algorithm:
        raise UntrustedModel(
            f"it is signed with {signature.algorithm} but this process only holds "
            f"{algorithm} keys: {_HOW_TO_CONFIGURE}"
        )
    ids = sorted(known)
    if signature.key_id not in ids:
        raise UntrustedModel(
            f"it is signed with {signature.algorithm} key {signature.key_id!r}, which this "
            f"process does not trust (it trusts {', '.join(map(repr, ids)) or 'no key'}): "
            "configure that key's verification key, or publish the model again with a "
            "trusted key"
        )


_MISMATCH = (
    "the signature does not verify: the artifact or its metadata was changed after it was "
    "signed, or it was signed with another key of the same id"
)


class HmacSigner:
    """Signs with HMAC-SHA256 and a shared secret (which is never shown)."""

    __slots__ = ("__key", "key_id")
    algorithm = HMAC

    def __init__(self, key: bytes | str) -> None:
        self.__key = _hmac_key(key, "the HMAC signing key")
        self.key_id = _hmac_key_id(self.__key)

    @classmethod
    def from_env(cls) -> HmacSigner | None:
        """The signer of ``LOOPLINE_SIGNING_KEY``, or None when it is not set."""
        key = os.environ.get(SIGNING_KEY_ENV)
        return cls(_hmac_key(key, SIGNING_KEY_ENV)) if key else None

    def sign(self, message: bytes) -> Signature:
        mac = hmac.new(self.__key, message, hashlib.sha256).digest()
        return Signature(HMAC, self.key_id, _b64(mac))

    def verifier(self) -> HmacVerifier:
        return HmacVerifier(self.__key)

    def __repr__(self) -> str:
        return f"HmacSigner(key_id={self.key_id!r})"


class HmacVerifier:
    """Verifies HMAC-SHA256 signatures made with any of `keys` (e.g. the old and new key)."""

    __slots__ = ("__keys",)

    def __init__(self, *keys: bytes | str) -> None:
        if not keys:
            raise ValueError("an HmacVerifier needs at least one key")
        raw = [_hmac_key(k, "an HMAC verification key") for k in keys]
        self.__keys = {_hmac_key_id(k): k for k in raw}

    @classmethod
    def from_env(cls) -> HmacVerifier | None:
        key = os.environ.get(SIGNING_KEY_ENV)
        return cls(_hmac_key(key, SIGNING_KEY_ENV)) if key else None

    def trusts(self) -> list[tuple[str, str]]:
        return [(HMAC, key_id) for key_id in sorted(self.__keys)]

    def verify(self, message: bytes, signature: Signature | None) -> None:
        _check(signature, HMAC, self.__keys)
        assert signature is not None
        expected = hmac.new(self.__keys[signature.key_id], message, hashlib.sha256).digest()
        try:
            given = base64.b64decode(signature.value, validate=True)
        except ValueError:
            raise UntrustedModel(_MISMATCH) from None
        if not hmac.compare_digest(expected, given):
            raise UntrustedModel(_MISMATCH)

    def __repr__(self) -> str:
        return f"HmacVerifier(key_ids={sorted(self.__keys)!r})"


def _ed25519_key_id(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _read_pem(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {str(path)!r}: {exc.strerror}") from None


class Ed25519Signer:
    """Signs with an Ed25519 private key (PEM, PKCS#8, unencrypted), never shown."""

    __slots__ = ("__key", "key_id")
    algorithm = ED25519

    def __init__(self, private_key) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if isinstance(private_key, bytes | str):
            pem = private_key.encode() if isinstance(private_key, str) else private_key
            try:
                private_key = serialization.load_pem_private_key(pem, password=None)
            except (ValueError, TypeError):
                raise ValueError(
                    "not an unencrypted Ed25519 private key in PEM: make a key pair with "
                    "`loopline models keygen`"
                ) from None
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key: make one with `loopline models keygen`")
        self.__key = private_key
        self.key_id = _ed25519_key_id(private_key.public_key())

    @classmethod
    def from_file(cls, path: str | Path) -> Ed25519Signer:
        return cls(_read_pem(path, "Ed25519 private key file"))

    @classmethod
    def from_env(cls) -> Ed25519Signer | None:
        """The signer of the key in ``LOOPLINE_SIGNING_KEY_FILE``, or None when it is not set."""
        path = os.environ.get(SIGNING_KEY_FILE_ENV)
        return cls.from_file(path) if path else None

    def sign(self, message: bytes) -> Signature:
        return Signature(ED25519, self.key_id, _b64(self.__key.sign(message)))

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.__key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.public_pem())

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"


class Ed25519Verifier:
    """Verifies Ed25519 signatures made by any of `public_keys` (PEM bytes or key objects)."""

    __slots__ = ("_keys",)

    def __init__(self, *public_keys) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if not public_keys:
            raise ValueError("an Ed25519Verifier needs at least one public key")
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in public_keys:
            if isinstance(key, bytes | str):
                pem = key.encode() if isinstance(key, str) else key
                try:
                    key = serialization.load_pem_public_key(pem)
                except (ValueError, TypeError):
                    raise ValueError(
                        "not an Ed25519 public key in PEM: use the .pub file that "
                        "`loopline models keygen` wrote"
                    ) from None
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 public key")
            self._keys[_ed25519_key_id(key)] = key

    @classmethod
    def from_files(cls, *paths: str | Path) -> Ed25519Verifier:
        return cls(*(_read_pem(p, "Ed25519 public key file") for p in paths))

    @classmethod
    def from_env(cls) -> Ed25519Verifier | None:
        """The public keys in ``LOOPLINE_VERIFY_KEY_FILE`` (paths separated by ``os.pathsep``)."""
        paths = [p for p in os.environ.get(VERIFY_KEY_FILE_ENV, "").split(os.pathsep) if p]
        return cls.from_files(*paths) if paths else None

    def trusts(self) -> list[tuple[str, str]]:
        return [(ED25519, key_id) for key_id in sorted(self._keys)]

    def verify(self, message: bytes, signature: Signature | None) -> None:
        from cryptography.exceptions import InvalidSignature

        _check(signature, ED25519, self._keys)
        assert signature is not None
        try:
            self._keys[signature.key_id].verify(
                base64.b64decode(signature.value, validate=True), message
            )
        except (InvalidSignature, ValueError):
            raise UntrustedModel(_MISMATCH) from None

    def __repr__(self) -> str:
        return f"Ed25519Verifier(key_ids={sorted(self._keys)!r})"


class Keyring:
    """Several verifiers as one: a signature is checked by the one holding its algorithm.

    >>> old, new = HmacSigner("the key of last year, long enough"), HmacSigner("this year's key, also long enough")
    >>> ring = Keyring([old.verifier(), new.verifier()])
    >>> ring.verify(b"m", old.sign(b"m")); ring.verify(b"m", new.sign(b"m"))
    >>> len(ring.trusts())
    2
    """

    def __init__(self, verifiers: Sequence[Verifier]) -> None:
        self.verifiers = list(verifiers)

    def trusts(self) -> list[tuple[str, str]]:
        return sorted(t for v in self.verifiers for t in v.trusts())

    def verify(self, message: bytes, signature: Signature | None) -> None:
        if signature is not None and not self.verifiers:
            raise UntrustedModel(f"this process trusts no signing key: {_HOW_TO_CONFIGURE}")
        trusted = self.trusts()
        algorithms = sorted({a for a, _ in trusted})
        algorithm = signature.algorithm if signature is not None else ""
        _check(
            signature,
            algorithm if algorithm in algorithms else " and ".join(algorithms),
            [k for a, k in trusted if a == algorithm],
        )
        assert signature is not None
        for verifier in self.verifiers:
            if (signature.algorithm, signature.key_id) in verifier.trusts():
                verifier.verify(message, signature)
                return

    def __repr__(self) -> str:
        return f"Keyring({self.verifiers!r})"


def signer_from_env() -> Signer | None:
    """The signer the environment configures: Ed25519 (``LOOPLINE_SIGNING_KEY_FILE``) first,
    else HMAC (``LOOPLINE_SIGNING_KEY``), else None."""
    return Ed25519Signer.from_env() or HmacSigner.from_env()


def verifier_from_env() -> Verifier | None:
    """Every verification key the environment configures, as one `Keyring`, or None.

    ``LOOPLINE_VERIFY_KEY_FILE`` (Ed25519 public keys), ``LOOPLINE_SIGNING_KEY``
    (the HMAC secret) and the public half of ``LOOPLINE_SIGNING_KEY_FILE``.
    """
    verifiers: list[Verifier] = []
    for verifier in (Ed25519Verifier.from_env(), HmacVerifier.from_env()):
        if verifier is not None:
            verifiers.append(verifier)
    signer = Ed25519Signer.from_env()
    if signer is not None:
        verifiers.append(signer.verifier())
    return Keyring(verifiers) if verifiers else None


def generate_ed25519_keys(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair (PEM; the private file readable by its owner only).

    Returns the key id that signatures will name. Refuses to overwrite a file.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> key_id = generate_ed25519_keys(folder / "models.key", folder / "models.pub")
    >>> signer = Ed25519Signer.from_file(folder / "models.key")
    >>> signer.key_id == key_id
    True
    >>> Ed25519Verifier.from_files(folder / "models.pub").verify(b"m", signer.sign(b"m"))
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists already: choose another name or remove it")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return _ed25519_key_id(key.public_key())
