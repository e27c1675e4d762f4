"""Dataset manifests: exactly what a training dataset was built from (docs/decisions/0009).

A `Manifest` is written as JSON next to the dataset (``<out>.manifest.json``).
It names the application and the fingerprint of its feature declarations,
every topic partition read as a half-open offset range ``[start, end)`` with
the number of records found there and a digest of them, the spine (a file and
its SHA-256, or a topic's ranges), and the dataset's row count and SHA-256:
enough to build the same file again, and to notice when that is impossible.

>>> import tempfile, pathlib
>>> ranges = [PartitionRange(0, start=0, end=3, records=3, undecodable=1)]
>>> manifest = Manifest(
...     app="shop", app_spec="shop:app", entity="member", features=["clicks_1h"],
...     fingerprint="ab" * 32, sources=[TopicRange("clicks", ranges)],
...     spine=SpineSource(entity_column="member_id", time_column="at", rows=2,
...                       file="/data/spine.csv", sha256="cd" * 32),
...     output="train.parquet", rows=2, sha256="ef" * 32)
>>> manifest.sources[0].records, manifest.sources[0].undecodable
(3, 1)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "train.parquet.manifest.json"
>>> write_manifest(manifest, path)
>>> read_manifest(path) == manifest
True
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from loopline import __version__
from loopline.features.offline.events import BuildError
from loopline.stream.ranges import PartitionRange, TopicRange

__all__ = [
    "FORMAT",
    "DatasetError",
    "Manifest",
    "PartitionRange",
    "SpineSource",
    "TopicRange",
    "engine_versions",
    "file_sha256",
    "manifest_path",
    "read_manifest",
    "write_manifest",
]

# Of the manifest's JSON; a reader refuses a later one. 2: ranges digested as every reader of
# pinned ranges digests them (`loopline.stream.ranges`); a format 1 digest is not comparable.
FORMAT = 2


class DatasetError(BuildError):
    """A dataset that cannot be built or rebuilt as asked (the message says what to do)."""


class SpineSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where the spine came from: a file (`file`, `sha256`) or a topic's ranges (`topic`).

    `entity_column` and `time_column` are the spine's columns as chosen at
    build time, so a rebuild reads them the same way.
    """

    entity_column: str
    time_column: str
    rows: int
    file: str | None = None
    sha256: str | None = None
    topic: TopicRange | None = None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def engine_versions() -> dict[str, str]:
    """Versions of the libraries whose output is in the dataset's bytes."""
    out = {}
    for name in ("pyarrow", "duckdb"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - both are dependencies
            out[name] = "unknown"
    return out


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What one dataset was built from; `loopline dataset rebuild` reads it back."""

    app: str
    app_spec: str | None  # module:attribute, to load the application again
    entity: str
    features: list[str]
    fingerprint: str  # FeatureSet.fingerprint() of the declarations
    sources: list[TopicRange]
    spine: SpineSource
    output: str  # the dataset's file name, next to the manifest
    rows: int
    sha256: str  # of the dataset file
    # per topic, the records no feature could read (no entity id, an unreadable time, a value
    # of a type a feature cannot use): left out, as the online processor dead-letters them
    unusable: dict[str, int] = msgspec.field(default_factory=dict)
    # per table topic, the spine rows given the defaults because the history they needed was
    # gone (compaction, retention), accepted with --allow-missing-history (decision 0009)
    missing_history: dict[str, int] = msgspec.field(default_factory=dict)
    # a spine about several related entities: entity name -> its id column (then `entity`
    # lists the names); left out of single-entity manifests
    entities: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    # what got a default silently: per feature, the rows nothing was known for; per derived
    # feature, the rows whose function raised; per table topic, the rows before its first
    # record (a table timed at ingestion, without --time-column, is after every past row)
    defaulted: dict[str, int] = msgspec.field(default_factory=dict)
    derived_errors: dict[str, int] = msgspec.field(default_factory=dict)
    before_first_record: dict[str, int] = msgspec.field(default_factory=dict)
    loopline_version: str = __version__
    engines: dict[str, str] = msgspec.field(default_factory=engine_versions)
    created_at: str = msgspec.field(default_factory=_now)
    format: int = FORMAT

    @property
    def topics(self) -> list[TopicRange]:
        """Every topic read: the sources, then the spine's topic if any."""
        return [*self.sources, *([self.spine.topic] if self.spine.topic else [])]


def manifest_path(out: str | Path) -> Path:
    """Where the manifest of the dataset at `out` is written: ``<out>.manifest.json``.

    >>> manifest_path("data/train.parquet").as_posix()
    'data/train.parquet.manifest.json'
    """
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def write_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write `manifest` as indented JSON to `path`."""
    data = msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"
    Path(path).write_bytes(data)


def read_manifest(path: str | Path) -> Manifest:
    """The manifest in `path`; a `DatasetError` saying what is wrong with it otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read manifest {str(path)!r}: {exc.strerror}") from None
    try:
        found = msgspec.json.decode(data, type=dict).get("format", FORMAT)
        if isinstance(found, int) and found > FORMAT:
            raise DatasetError(
                f"manifest {str(path)!r} has format {found}, newer than this loopline "
                f"({__version__}) reads ({FORMAT}): upgrade loopline"
            )
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as exc:
        raise DatasetError(
            f"{str(path)!r} is not a dataset manifest ({exc}); give the "
            "<dataset>.manifest.json file written by `loopline dataset build`"
        ) from None


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at `path`, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Fixed, so the same table always gives the same bytes (docs/decisions/0009).
PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "row_group_size": 1_048_576,
    "write_page_index": False,
    "store_schema": True,
}


def write_parquet(table: pa.Table, out: str | Path) -> str:
    """Write `table` to `out` deterministically (same table, same bytes); return its SHA-256.

    The file appears at `out` complete or not at all.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> rows = pa.table({"entity": ["m1", "m2"], "at": [1, 2]})
    >>> write_parquet(rows, folder / "a.parquet") == write_parquet(rows, folder / "b.parquet")
    True
    >>> (folder / "a.parquet").read_bytes() == (folder / "b.parquet").read_bytes()
    True
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = table.replace_schema_metadata(None)
    # Not mkstemp: its files are 0600 whatever the umask, and a dataset is shared like any
    # file its user writes. O_EXCL with a random name is as safe against a clash.
    temp = out.parent / f".{out.name}.{secrets.token_hex(8)}.tmp"
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        pq.write_table(table, temp, **PARQUET_OPTIONS)
        sha = file_sha256(temp)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return sha
