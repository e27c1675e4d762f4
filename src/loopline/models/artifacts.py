"""Model artifacts: the bytes of a fitted model, how they travel, and how they are read back.

An artifact up to the registry's size limit travels in the log, split into
chunks small enough for one Kafka message; a larger one is written to a
directory or object store and only its URI travels (docs/decisions/0011).
Either way the version records its SHA-256, and it is signed.

Formats say how the bytes become a model again. Prefer the ones that do not
run code when loaded: ``skops`` for scikit-learn, ``lightgbm`` (LightGBM's
text format), ``onnx``, ``json``, ``bytes``. ``pickle`` (and ``joblib``) run
arbitrary code on load, so `decode` refuses them unless the caller says the
bytes were verified, which `loopline.models.ModelRegistry.load_model` does
only after the signature and the SHA-256 check out.

>>> decode(encode({"weights": [0.5, -1.0]}, "json"), "json")
{'weights': [0.5, -1.0]}
>>> decode(encode([1, 2], "pickle"), "pickle")
Traceback (most recent call last):
...
loopline.models.signing.UntrustedModel: refusing to unpickle bytes that were not verified: \
a pickle runs code when it is loaded; load it through ModelRegistry.load_model, which checks \
its signature first
>>> [len(c) for c in split(b"x" * 10, 4)]
[4, 4, 2]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from loopline.models.signing import ModelLoadError, UntrustedModel

CHUNK_SIZE = 512 * 1024  # well under Kafka's default 1 MB message.max.bytes
MAX_IN_LOG = 64 * 1024 * 1024
ARTIFACT_DIR_ENV = "LOOPLINE_ARTIFACT_DIR"
ARTIFACT_ROOTS_ENV = "LOOPLINE_ARTIFACT_ROOTS"


class ArtifactUnavailable(ModelLoadError):
    """An artifact whose bytes cannot be read (a missing chunk, file or object)."""


@dataclass(frozen=True)
class Format:
    """How a format turns a model into bytes and back, and whether loading runs code."""

    name: str
    runs_code_on_load: bool
    extension: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    """`data` in pieces of at most `chunk_size` bytes (one empty piece for empty data)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]


# -- formats ---------------------------------------------------------------------------


def _needs(module: str, package: str, fmt: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelLoadError(
            f"the {fmt!r} format needs the {package} package: `pip install {package}`"
        ) from None


def _skops_encode(model: Any) -> bytes:
    return _needs("skops.io", "skops", "skops").dumps(model)


def _skops_decode(data: bytes) -> Any:
    sio = _needs("skops.io", "skops", "skops")
    # The types of scikit-learn and the libraries under it are trusted; anything else
    # (a user's function in a FunctionTransformer) makes skops refuse, naming it.
    found = sio.get_untrusted_types(data=data)
    trusted = [t for t in found if t.split(".")[0] in ("sklearn", "numpy", "scipy")]
    return sio.loads(data, trusted=trusted)


def _lightgbm_encode(model: Any) -> bytes:
    booster = getattr(model, "booster_", model)
    return booster.model_to_string().encode("utf-8")


def _lightgbm_decode(data: bytes) -> Any:
    lgb = _needs("lightgbm", "lightgbm", "lightgbm")
    return lgb.Booster(model_str=data.decode("utf-8"))


def _onnx_encode(model: Any) -> bytes:
    return model if isinstance(model, bytes) else model.SerializeToString()


def _onnx_decode(data: bytes) -> Any:
    ort = _needs("onnxruntime", "onnxruntime", "onnx")
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _joblib_encode(model: Any) -> bytes:
    buffer = io.BytesIO()
    _needs("joblib", "joblib", "joblib").dump(model, buffer)
    return buffer.getvalue()


def _joblib_decode(data: bytes) -> Any:
    return _needs("joblib", "joblib", "joblib").load(io.BytesIO(data))


def _bytes(model: Any) -> bytes:
    if not isinstance(model, bytes | bytearray | memoryview):
        raise TypeError(f"the 'bytes' format stores bytes, not {type(model).__name__}")
    return bytes(model)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("skops", False, ".skops", _skops_encode, _skops_decode),
        Format("lightgbm", False, ".txt", _lightgbm_encode, _lightgbm_decode),
        Format("onnx", False, ".onnx", _onnx_encode, _onnx_decode),
        Format(
            "json",
            False,
            ".json",
            lambda m: json.dumps(m, sort_keys=True).encode(),
            lambda b: json.loads(b),
        ),
        Format("bytes", False, ".bin", _bytes, bytes),
        Format("pickle", True, ".pkl", lambda m: pickle.dumps(m, protocol=5), pickle.loads),
        Format("joblib", True, ".joblib", _joblib_encode, _joblib_decode),
    )
}


def format_of(name: str) -> Format:
    """The `Format` called `name`, or a `ValueError` naming the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown model format {name!r}: use one of {', '.join(sorted(FORMATS))}"
        ) from None


def encode(model: Any, format: str) -> bytes:
    """The bytes of `model` in `format`."""
    return format_of(format).encode(model)


def decode(data: bytes, format: str, *, verified: bool = False) -> Any:
    """The model that `data` holds in `format`.

    A format that runs code on load (``pickle``, ``joblib``) is refused unless
    `verified` says the bytes' signature and SHA-256 were checked first.
    """
    fmt = format_of(format)
    if fmt.runs_code_on_load and not verified:
        raise UntrustedModel(
            f"refusing to un{fmt.name} bytes that were not verified: a {fmt.name} runs code "
            "when it is loaded; load it through ModelRegistry.load_model, which checks its "
            "signature first"
        )
    try:
        return fmt.decode(data)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read the {fmt.name} artifact: {exc}") from exc


# -- artifacts outside the log ---------------------------------------------------------


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


def write_outside(directory: str, relative: str, data: bytes) -> str:
    """Store `data` at `directory`/`relative` (a path, ``file://`` or fsspec URL); return its URI.

    A local file is written to a temporary name, synced and renamed into place,
    so a reader never sees half an artifact.
    """
    local = _local_path(directory)
    if local is None:
        fsspec = _needs("fsspec", "fsspec", "object-store")
        uri = directory.rstrip("/") + "/" + relative
        with fsspec.open(uri, "wb") as handle:
            handle.write(data)
        return uri
    target = local.absolute() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{uuid.uuid4().hex}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target.as_uri()


def artifact_roots(*configured: str | None) -> list[str]:
    """Where artifacts outside the log may be read: `configured` ones and ``$LOOPLINE_ARTIFACT_ROOTS``.

    The roots are directories (paths or ``file://`` URLs) or object-store URL
    prefixes; the environment variable holds several separated by commas.
    A version's ``storage.uri`` is not signed (decision 0011), so it is read
    only where one of these roots holds it.

    >>> artifact_roots("/srv/models", None, "/srv/models")
    ['/srv/models']
    """
    from_env = os.environ.get(ARTIFACT_ROOTS_ENV, "").split(",")
    roots = [r.strip() for r in (*configured, *from_env) if r and r.strip()]
    return list(dict.fromkeys(roots))


def read_outside(uri: str, size: int, roots: Sequence[str]) -> bytes:
    """The `size` bytes at `uri`, read only if `uri` is a regular file of that size under `roots`.

    Raises `UntrustedModel` for a location outside the roots, something that
    is not a regular file, or a size other than the signed one: nothing is
    read then (so nothing about the file can leak), and a FIFO cannot block.
    Raises `ArtifactUnavailable` when the artifact cannot be read.
    """
    local = _local_path(uri)
    try:
        if local is not None:
            return _read_local(uri, local, size, roots)
        if not _under_url(uri, roots):
            raise UntrustedModel(_outside(uri, roots))
        fsspec = _needs("fsspec", "fsspec", "object-store")
        with fsspec.open(uri, "rb") as handle:
            data = handle.read(size + 1)  # one byte more tells a larger object
    except OSError as exc:
        raise ArtifactUnavailable(
            f"cannot read the artifact at {uri}: {exc.strerror or exc}; it was moved or "
            "deleted, or this machine cannot reach it"
        ) from None
    if len(data) != size:
        raise UntrustedModel(_not_signed_size(uri, size))
    return data


def _read_local(uri: str, local: Path, size: int, roots: Sequence[str]) -> bytes:
    # Resolved first (symbolic links, "..", a relative path against the working directory),
    # so a link inside a root to a file outside it is outside too.
    path = Path(os.path.realpath(local))
    trusted = [Path(os.path.realpath(p)) for p in map(_local_path, roots) if p is not None]
    if not any(path.is_relative_to(root) for root in trusted):
        raise UntrustedModel(_outside(uri, roots))
    # O_NONBLOCK: opening a FIFO would wait for a writer; O_NOFOLLOW: no link swapped in since.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedModel(f"the artifact at {uri} is not a regular file; it is not read")
        if info.st_size != size:
            raise UntrustedModel(_not_signed_size(uri, size))
        chunks, left = [], size + 1  # one byte more tells a file that grew since
        while left and (chunk := handle.read(min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    return b"".join(chunks)


def _under_url(uri: str, roots: Iterable[str]) -> bool:
    parts = urlparse(uri).path.split("/")
    if ".." in parts or "." in parts:
        return False
    return any(uri.startswith(root.rstrip("/") + "/") for root in roots if "://" in root)


def _outside(uri: str, roots: Sequence[str]) -> str:
    where = ", ".join(roots) if roots else "none are configured"
    return (
        f"the artifact location {uri} is outside the artifact roots this process reads "
        f"({where}); it is not read. A location is not signed: if the artifact was moved "
        f"there, add its directory to {ARTIFACT_ROOTS_ENV} (or {ARTIFACT_DIR_ENV})"
    )


def _not_signed_size(uri: str, size: int) -> str:
    return (
        f"the artifact at {uri} is not the signed size ({size:,} bytes); it is not read: "
        "it was changed after publishing; publish it again"
    )
