"""Training data: a dataset built from a spine, or the labelled examples of a topic, pinned.

A model learns from one of two things, and `loopline train` reads either:

- a **dataset** of a spine (entity, instant, label) with the application's
  features as of every instant (`loopline.features.offline.datasets`): the
  manifest pins every topic range read, and `rebuild` makes the same file again;
- a topic of **labelled examples** (what the outcome joiner writes: the
  features exactly as served, plus the outcome). Records are JSON objects,
  nested ``{"features": {...}, "label": 1, "at": ...}`` or flat
  ``{"clicks_1h": 3, ..., "label": 1, "at": ...}``. The topic is pinned to its
  committed ends first, so the same ranges can be read again later.

Either way the result is a `TrainingData`: a table of the model's features, its
label and a time column (epoch milliseconds), and a manifest (a JSON-able dict)
that names exactly what was read. Labelled topics are read in bulk: values are
parsed in bulk (`loopline.models.training_examples`), so reading is not the
slow part of training.

>>> import json, tempfile
>>> from loopline import App
>>> from loopline.log import open_log
>>> from loopline.models.declarations import Model
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("examples")
>>> producer = log.producer()
>>> for i in range(4):
...     example = {"features": {"spend": float(i)}, "label": i % 2, "at": 1_700_000_000_000 + i}
...     producer.send("examples", json.dumps(example).encode())
>>> producer.send("examples", b"not json")
>>> producer.flush()
5
>>> app = App("shop", models=[Model("buy", trainer=object, entity="member")])
>>> data = from_labelled(log, app, app.model("buy"), "examples")
>>> data.features, data.label, data.time, data.table.num_rows
(('spend',), 'label', 'at', 4)
>>> data.manifest["kind"], data.manifest["records"], data.manifest["undecodable"]
('labelled', 5, 1)
>>> again = labelled_again(log, app, app.model("buy"), data.manifest)
>>> again.table.equals(data.table)
True
>>> producer.close(); log.close()
"""

from __future__ import annotations

import datetime
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopline import __version__
from loopline.app import App
from loopline.contracts.registry import SchemaRegistry
from loopline.features.offline.datasets import build_dataset, rebuild
from loopline.features.offline.manifests import (
    DatasetError,
    Manifest,
    PartitionRange,
    TopicRange,
    manifest_path,
    write_manifest,
)
from loopline.features.offline.pinned import pin
from loopline.log import Log
from loopline.models.declarations import Model
from loopline.models.evaluation import DataError, check_features
from loopline.models.training_examples import (
    LOG_TIME,
    TIME_FIELDS,
    ExampleChunk,
    Progress,
    read_examples,
)

__all__ = [
    "Progress",
    "TrainingData",
    "dataset_again",
    "entity_features",
    "feature_types",
    "from_labelled",
    "from_spine",
    "group_column",
    "labelled_again",
]

_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)


@dataclass(frozen=True)
class TrainingData:
    """A model's training data: the rows, which columns are what, and where they came from.

    `table` holds the feature columns, the label column and the time column
    (epoch ms, or a timestamp type), in the order read; `manifest` is JSON-able
    and is what the registry records as the version's data lineage.
    """

    table: pa.Table
    features: tuple[str, ...]
    label: str
    time: str
    manifest: dict[str, Any]
    origin: str  # for messages: "spine 'labels.csv'" or "topic 'accept-examples'"


def is_numeric(kind: pa.DataType) -> bool:
    return any(test(kind) for test in _NUMERIC)


def feature_types(table: pa.Table, features: Iterable[str]) -> list[tuple[str, str]]:
    """``(name, type)`` of each feature as the registry records it: int, float, bool or string
    (a category).

    >>> table = pa.table({"n": [1], "x": [0.5], "new": [True], "city": ["Oslo"]})
    >>> feature_types(table, ["n", "x", "new", "city"])
    [('n', 'int'), ('x', 'float'), ('new', 'bool'), ('city', 'string')]
    """
    out = []
    for name in features:
        kind = table.schema.field(name).type
        if pa.types.is_boolean(kind):
            out.append((name, "bool"))
        elif pa.types.is_integer(kind):
            out.append((name, "int"))
        elif pa.types.is_floating(kind) or pa.types.is_null(kind):
            out.append((name, "float"))
        elif pa.types.is_large_string(kind):
            out.append((name, "string"))
        else:
            out.append((name, str(kind)))
    return out


def entity_features(app: App, entity: str) -> list[str]:
    """Every feature `app` declares for `entity`, in declaration order, derived ones last.

    >>> from loopline.features import Aggregations, Derived, Entity, FeatureSet
    >>> from loopline.features.aggregations import Count
    >>> member = Entity("member", key="member_id")
    >>> feats = FeatureSet([Aggregations("clicks", member, Count.per_window("clicks", windows=["1h"]))],
    ...                    derived=[Derived("busy", ("clicks_1h",), lambda n: n > 3)])
    >>> entity_features(App("shop", features=feats), "member")
    ['clicks_1h', 'busy']
    """
    groups = [*app.features.aggregations, *app.features.tables]
    names = [f.name for g in groups if g.entity.name == entity for f in g.features]
    known, pending = set(names), list(app.features.derived)
    while pending:
        ready = [d for d in pending if all(i in known for i in d.inputs)]
        if not ready:
            break
        for d in ready:
            names.append(d.name)
            known.add(d.name)
            pending.remove(d)
    return names


def group_column(model: Model) -> str | None:
    """The column holding each row's query id, for a ranking model (``params["groups"]``)."""
    return getattr(model, "groups", None) or model.params.get("groups")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _reading(progress: Progress | None) -> Callable[[str, int, int], None] | None:
    if progress is None:
        return None
    return lambda topic, read, total: progress(f"read {topic}", read, total)


# -- datasets of a spine ----------------------------------------------------------------


def from_spine(
    log: Log,
    app: App,
    model: Model,
    spine: str | Path,
    *,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
    allow_missing_history: bool = False,
    entities: Mapping[str, str] | None = None,
) -> TrainingData:
    """Build the dataset of `spine` with the application's features (`build_dataset`) and read it.

    The manifest records where `app` was loaded from (`App.spec`), so that a
    later rebuild finds the application by itself. Spine rows whose table
    history is gone refuse the build unless `allow_missing_history`.
    """
    with tempfile.TemporaryDirectory(prefix="loopline-train-") as folder:
        out = Path(folder) / "dataset.parquet"
        manifest = build_dataset(
            log,
            app,
            spine,
            out,
            registry=schemas,
            entity=None if entities else model.entity,
            entities=entities,  # a spine of related entities (a user and an item)
            progress=_reading(progress),
            allow_missing_history=allow_missing_history,
        )
        table = pq.read_table(out)
    return _dataset(table, manifest, model, f"spine {str(spine)!r}")


def dataset_again(
    log: Log,
    application: App,
    model: Model,
    recorded: dict[str, Any],
    *,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
) -> TrainingData:
    """The dataset of a version's manifest built again, byte for byte (`rebuild`), and read."""
    old = msgspec.convert(
        {k: v for k, v in recorded.items() if k in Manifest.__struct_fields__}, Manifest
    )
    with tempfile.TemporaryDirectory(prefix="loopline-reproduce-") as folder:
        then = Path(folder) / old.output
        write_manifest(old, manifest_path(then))
        out = Path(folder) / "again.parquet"
        new = rebuild(
            log,
            manifest_path(then),
            out,
            app=application,
            registry=schemas,
            progress=_reading(progress),
        )
        table = pq.read_table(out)
    return _dataset(table, new, model, f"the dataset of {old.output}")


def _dataset(table: pa.Table, manifest: Manifest, model: Model, origin: str) -> TrainingData:
    time_column = model.time if model.time in table.column_names else manifest.spine.time_column
    features = tuple(model.features) if model.features is not None else tuple(manifest.features)
    recorded = {"kind": "dataset", **msgspec.to_builtins(manifest)}
    return TrainingData(table, features, model.label, time_column, recorded, origin)


# -- labelled examples of a topic --------------------------------------------------------


def from_labelled(
    log: Log,
    app: App,
    model: Model,
    topic: str,
    *,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
) -> TrainingData:
    """The labelled examples of `topic`, pinned to its committed ends now, as training data."""
    ranges = pin(log, topic)
    times = _time_fields(model)
    tables, read = read_examples(log, ranges, schemas=schemas, progress=progress, time_fields=times)
    return _examples(app, model, tables, read)


def labelled_again(
    log: Log,
    app: App,
    model: Model,
    recorded: dict[str, Any],
    *,
    schemas: SchemaRegistry | None = None,
    progress: Progress | None = None,
) -> TrainingData:
    """The examples of a version's manifest read again from exactly its ranges.

    A `DatasetError` if the log no longer holds the very records read then.
    """
    then = TopicRange(
        recorded["topic"],
        [msgspec.convert(p, PartitionRange) for p in recorded["partitions"]],
    )
    times = _time_fields(model)
    tables, now = read_examples(log, then, schemas=schemas, progress=progress, time_fields=times)
    for old, new in zip(then.partitions, now.partitions, strict=True):
        if (old.records, old.sha256) != (new.records, new.sha256):
            raise DatasetError(
                f"topic {then.topic!r} partition {old.partition} holds other records in offsets "
                f"[{old.start}, {old.end}) than when the model was trained ({old.records} "
                f"records then, {new.records} now): compaction removed some, or the topic was "
                "created again. The model cannot be reproduced from this log"
            )
    return _examples(app, model, tables, now)


def _examples(app: App, model: Model, tables: list[ExampleChunk], read: TopicRange) -> TrainingData:
    origin = f"topic {read.topic!r}"
    columns: dict[str, pa.DataType] = {}
    nested: dict[str, None] = {}
    for chunk in tables:
        nested.update(dict.fromkeys(chunk.nested))
        for field in chunk.table.schema:
            if field.name not in columns or pa.types.is_null(columns[field.name]):
                columns[field.name] = field.type
    time_column = next(
        (c for c in (model.time, *TIME_FIELDS) if c in columns and c != LOG_TIME), model.time
    )
    if model.features is not None:
        features = tuple(model.features)
    elif nested:
        features = tuple(nested)
    else:
        features = _flat_features(app, model, columns, time_column)
    extra = [c for c in (group_column(model),) if c is not None]
    wanted = [*dict.fromkeys([*features, model.label, *extra, time_column, LOG_TIME])]
    try:
        parts = [c.table.select([n for n in wanted if n in c.table.column_names]) for c in tables]
        table = pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"the examples of {origin} disagree on a field's type: {exc}") from None
    records, undecodable = read.records, read.undecodable
    if table.num_rows == 0:
        raise DataError(
            f"the data is empty: {origin} has no labelled examples ({records:,} records read"
            f"{f', {undecodable:,} not JSON objects' if undecodable else ''}); "
            "check the topic name, or wait for outcomes to be joined"
        )
    check_features(
        pa.table({n: pa.nulls(0, t) for n, t in columns.items() if n != LOG_TIME}), features
    )
    if model.label not in table.column_names:
        raise DataError(
            f"the examples of {origin} have no label field {model.label!r}; their fields are "
            f"{', '.join(c for c in columns if c != LOG_TIME)}: set label= on the model, or "
            "pass --label FIELD to loopline train (the outcome joiner writes 'label')"
        )
    unlabelled = table[model.label].null_count
    if unlabelled:
        table = table.filter(pc.is_valid(table[model.label]))
    if table.num_rows == 0:
        raise DataError(
            f"the data is empty: none of the {records:,} examples of {origin} has a label "
            f"{model.label!r}; check the model's label="
        )
    if time_column in table.column_names:
        times = pc.coalesce(table[time_column], table[LOG_TIME])
        table = table.drop_columns([time_column]).append_column(time_column, times)
    else:
        table = table.append_column(time_column, table[LOG_TIME])
    table = table.drop_columns([LOG_TIME])
    partitions = [msgspec.to_builtins(p) for p in read.partitions]
    manifest = {
        "kind": "labelled",
        "app": app.name,
        "topic": read.topic,
        "partitions": partitions,
        "records": records,
        "undecodable": undecodable,
        "unlabelled": unlabelled,
        "rows": table.num_rows,
        "shape": "nested" if nested else "flat",
        "sha256": _digest_of(read),
        "fingerprint": app.features.fingerprint(),
        "loopline_version": __version__,
        "created_at": _now(),
    }
    return TrainingData(table, features, model.label, time_column, manifest, origin)


def _time_fields(model: Model) -> tuple[str, ...]:
    """The fields an example's instant may be in: the model's time field, ``at``, ``timestamp``."""
    return tuple(dict.fromkeys((model.time, *TIME_FIELDS)))


def _flat_features(
    app: App, model: Model, columns: dict[str, pa.DataType], time_column: str
) -> tuple[str, ...]:
    """A flat example's features, when the model does not list them: the entity's declared
    features present in the examples, else every numeric field but the label and time."""
    declared = [n for n in entity_features(app, model.entity) if n in columns]
    if declared:
        return tuple(declared)
    keys = {g.entity.key for g in (*app.features.aggregations, *app.features.tables)}
    skip = {model.label, time_column, LOG_TIME, "entity", *TIME_FIELDS, *keys}
    return tuple(n for n, kind in columns.items() if n not in skip and is_numeric(kind))


def _digest_of(read: TopicRange) -> str:
    text = "\n".join(f"{p.partition}:{p.start}:{p.end}:{p.sha256}" for p in read.partitions)
    return hashlib.sha256(f"{read.topic}\n{text}".encode()).hexdigest()
