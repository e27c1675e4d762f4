"""Training datasets: point-in-time feature vectors of a spine, pinned so they can be rebuilt.

`build_dataset` gives every spine row (entity, instant, label...) the value
of every feature of its entity as the online processor would have read it at
that instant (docs/decisions/0008), and writes the rows as Parquet with a
`Manifest` beside it (``<out>.manifest.json``): the exact offset ranges read
from every topic, the fingerprint of the feature declarations, row counts and
the file's SHA-256. `rebuild` reads exactly those ranges again and writes a
byte-identical file, or says why it cannot (docs/decisions/0009).

>>> import json, pathlib, tempfile
>>> from loopline import App
>>> from loopline.features import Aggregations, Entity, FeatureSet
>>> from loopline.features.aggregations import Count
>>> from loopline.log import open_log
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> log = open_log(f"embedded:{folder / 'log'}")
>>> log.create_topic("clicks")
>>> member = Entity("member", key="member_id")
>>> app = App("shop", features=FeatureSet([
...     Aggregations("clicks", member, Count.per_window("clicks", windows=["1h"]), time="at")]))
>>> t0 = 1_700_000_000_000
>>> producer = log.producer()
>>> for minute in (1, 2, 3):
...     value = {"member_id": "m1", "at": t0 + minute * 60_000}
...     producer.send("clicks", json.dumps(value).encode(), timestamp=t0 + minute * 60_000)
>>> producer.flush()
3
>>> _ = (folder / "spine.csv").write_text(
...     f"member_id,at,label\\nm1,{t0 + 150_000},1\\nm1,{t0 + 180_000},0\\nm2,{t0 + 180_000},0\\n")
>>> manifest = build_dataset(log, app, folder / "spine.csv", folder / "train.parquet")
>>> import pyarrow.parquet as pq
>>> pq.read_table(folder / "train.parquet").to_pylist()[:2]
[{'member_id': 'm1', 'at': 1700000150000, 'label': 1, 'clicks_1h': 2}, \
{'member_id': 'm1', 'at': 1700000180000, 'label': 0, 'clicks_1h': 2}]
>>> [(p.start, p.end, p.records) for p in manifest.sources[0].partitions]
[(0, 3, 3)]
>>> producer.send("clicks", json.dumps({"member_id": "m1", "at": t0}).encode(), timestamp=t0)
>>> producer.flush()  # appended after the build: a rebuild does not read it
1
>>> again = rebuild(log, folder / "train.parquet.manifest.json", folder / "again.parquet", app=app)
>>> again.sha256 == manifest.sha256
True
>>> producer.close(); log.close()
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec
import pyarrow as pa

from loopline.app import App
from loopline.contracts.registry import SchemaRegistry
from loopline.features.offline.builder import build
from loopline.features.offline.coverage import before_first_record
from loopline.features.offline.events import unusable_records
from loopline.features.offline.history import Gaps, MissingHistory, per_topic, refusal
from loopline.features.offline.manifests import PARQUET_OPTIONS as PARQUET_OPTIONS
from loopline.features.offline.manifests import (
    DatasetError,
    Manifest,
    SpineSource,
    TopicRange,
    file_sha256,
    manifest_path,
    read_manifest,
    write_manifest,
    write_parquet,
)
from loopline.features.offline.pinned import Progress, pin, read_events, read_pinned
from loopline.features.offline.related import entity_view, read_related_spine, spine_entities
from loopline.features.offline.spines import (
    FORMATS,
    Spine,
    read_spine_file,
    spine_from_records,
)
from loopline.features.offline.values import BuildReport
from loopline.features.sources import SourceReader
from loopline.log import Log, TopicNotFound
from loopline.log.collector import collector_paused

__all__ = [
    "DatasetError",
    "Manifest",
    "Progress",
    "application_spec",
    "build_dataset",
    "rebuild",
    "write_parquet",
]


def build_dataset(
    log: Log,
    app: App,
    spine: str | Path,
    out: str | Path,
    *,
    registry: SchemaRegistry | None = None,
    entity: str | None = None,
    entities: Mapping[str, str] | None = None,
    time_column: str | None = None,
    progress: Progress | None = None,
    allow_missing_history: bool = False,
) -> Manifest:
    """Build the dataset of `spine` with `app`'s features into Parquet file `out`; the manifest
    goes to ``<out>.manifest.json`` and is returned.

    The manifest records where `app` was loaded from (`App.spec`, set by
    `loopline.app.load_app`), so that ``loopline dataset rebuild`` can load it
    again by itself. `spine` is a spine file (Parquet, CSV, JSON
    lines) or the name of a topic holding spine records (see
    `loopline.features.offline.spines`). `entity` names the spine's entity
    when the features describe several; `entities` maps the entities of a
    spine about several related ones (a member and an item) to their id
    columns (`loopline.features.offline.related`); `time_column` the spine's time
    column (default ``at``, else ``timestamp``). `registry` decodes topics
    bound to a contract. `progress(topic, offsets_read, offsets_to_read)` is
    called while topics are read.

    Every topic is pinned first: each partition is read from its first
    offset still held to its committed end at the start of the build, and
    nothing appended later is used.

    A table's value at a spine row's instant needs the table topic's history.
    When compaction or retention removed records that some rows may need
    (`loopline.features.offline.history`), the build is refused with a
    `DatasetError` naming the table and how many rows; with
    `allow_missing_history` those rows get the features' defaults instead, and
    the manifest's `missing_history` counts them per table topic.
    """
    entity_name, key_field, topics = spine_entities(app, entity, entities)
    file = _spine_file(log, spine)
    spine_range, spine_sha = None, None
    if file is None and entities:
        raise DatasetError("a spine of several entities is read from a file, not a topic")
    if file is not None:  # a bad spine fails before any topic is pinned or read
        spine_sha = file_sha256(file)  # first: the file may change while it is read
        spine_rows = (
            read_related_spine(file, entities, time_column)
            if entities
            else read_spine_file(file, key_field=key_field, time_column=time_column)
        )
    pinned = {topic: pin(log, topic) for topic in topics}
    reader = SourceReader(registry)
    if file is None:
        spine_range = pin(log, str(spine))
        spine_rows, spine_range = _topic_spine(
            log, spine_range, reader, progress, key_field=key_field, time_column=time_column
        )
    rows, sources, unusable, missing, silent = _rows(
        log, app, entities or entity_name, spine_rows, pinned, reader, progress
    )
    if missing and not allow_missing_history:
        raise DatasetError(refusal(missing, spine_rows.table.num_rows))
    sha = write_parquet(rows, out)
    manifest = Manifest(
        app=app.name,
        app_spec=app.spec,
        entity=entity_name,
        features=rows.column_names[spine_rows.table.num_columns :],  # build appends them
        fingerprint=app.features.fingerprint(),
        sources=sources,
        spine=SpineSource(
            entity_column=spine_rows.entity_column,
            time_column=spine_rows.time_column,
            rows=spine_rows.table.num_rows,
            file=None if file is None else str(file.resolve()),
            sha256=spine_sha,
            topic=spine_range,
        ),
        output=Path(out).name,
        rows=rows.num_rows,
        sha256=sha,
        unusable=unusable,
        missing_history=per_topic(missing),
        entities=dict(entities) if entities else msgspec.UNSET,
        **silent,
    )
    write_manifest(manifest, manifest_path(out))
    return manifest


def rebuild(
    log: Log,
    manifest: str | Path,
    out: str | Path,
    *,
    app: App,
    spine: str | Path | None = None,
    registry: SchemaRegistry | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Build the dataset of the manifest at `manifest` again into `out`, reading exactly the
    ranges it names; return the new manifest (also written to ``<out>.manifest.json``).

    `app` is the application the dataset was built with (the caller loads it,
    from the manifest's `Manifest.app_spec` or from where it moved: see
    `application_spec`); `spine` replaces the manifest's spine file when it
    moved. Both must be the same (same feature fingerprint, same file
    content). Raises `DatasetError`, saying what to do,
    when the log no longer holds the records read then (retention, compaction,
    a topic created again) or the new file differs from the manifest's.
    """
    old = read_manifest(manifest)
    _same_features(old, app)
    related = old.entities or None
    _, key_field, _ = spine_entities(app, None if related else old.entity, related)
    reader = SourceReader(registry)
    if related:
        spine_rows = read_related_spine(_rebuild_spine(old, spine), related, old.spine.time_column)
    elif old.spine.topic is not None:
        spine_rows, spine_range = _topic_spine(
            log,
            old.spine.topic,
            reader,
            progress,
            key_field=key_field,
            entity_column=old.spine.entity_column,
            time_column=old.spine.time_column,
        )
        _same_records(old.spine.topic, spine_range, old.format)
    else:
        file = _rebuild_spine(old, spine)
        spine_rows = read_spine_file(
            file,
            key_field=key_field,
            entity_column=old.spine.entity_column,
            time_column=old.spine.time_column,
        )
    pinned = {r.topic: r for r in old.sources}
    # the same records as then (checked below) miss the same history: accepted then, or the
    # dataset would not exist
    rows, sources, unusable, missing, silent = _rows(
        log, app, related or old.entity, spine_rows, pinned, reader, progress
    )
    for then, now in zip(old.sources, sources, strict=True):
        _same_records(then, now, old.format)
    sha = write_parquet(rows, out)
    new = Manifest(
        app=old.app,
        app_spec=app if isinstance(app, str) else old.app_spec,
        entity=old.entity,
        features=old.features,
        fingerprint=old.fingerprint,
        sources=sources,
        spine=old.spine if spine is None else _moved(old.spine, spine),
        output=Path(out).name,
        rows=rows.num_rows,
        sha256=sha,
        unusable=unusable,
        missing_history=per_topic(missing),
        entities=old.entities,
        **silent,
    )
    target = manifest_path(out)
    if sha != old.sha256:
        if target.resolve() != Path(manifest).resolve():
            write_manifest(new, target)
        engines = new.engines | {"loopline": new.loopline_version}
        then = old.engines | {"loopline": old.loopline_version}
        changed = [f"{k} {then.get(k)} -> {v}" for k, v in engines.items() if then.get(k) != v]
        why = (
            f"the libraries differ ({', '.join(changed)}): rebuild with the versions of the build"
            if changed
            else "the same records and declarations gave different bytes, which is a bug: "
            "please report it with both manifests"
        )
        raise DatasetError(
            f"the rebuilt {out} (sha256 {sha[:12]}...) differs from the dataset of the "
            f"manifest (sha256 {old.sha256[:12]}...): {why}"
        )
    write_manifest(new, target)
    return new


def _spine_file(log: Log, spine: str | Path) -> Path | None:
    """`spine` as a file path, or None when it names a topic of the log."""
    path = Path(spine)
    if path.is_file():
        return path
    looks_like_file = (
        isinstance(spine, Path) or path.suffix.lower() in FORMATS or os.sep in str(spine)
    )
    if not looks_like_file:
        try:
            log.describe_topic(str(spine))
            return None
        except TopicNotFound:
            pass
        raise DatasetError(
            f"the spine {str(spine)!r} is neither a file nor a topic of {log.url}: give a "
            "Parquet, CSV or JSON lines file, or the name of a topic holding spine records"
        )
    raise DatasetError(f"no spine file {str(spine)!r}: check the path")


def _topic_spine(
    log: Log,
    ranges: TopicRange,
    reader: SourceReader,
    progress: Progress | None,
    *,
    key_field: str,
    entity_column: str | None = None,
    time_column: str | None = None,
) -> tuple[Spine, TopicRange]:
    """The spine held by the records of `ranges`, and the ranges with their counts."""
    with collector_paused():
        read = read_pinned(
            log, ranges.topic, ranges, reader.decoder(ranges.topic), progress=progress
        )
        spine = spine_from_records(
            ranges.topic,
            read.records,
            key_field=key_field,
            entity_column=entity_column,
            time_column=time_column,
        )
    return spine, read.ranges


def _rows(
    log: Log,
    app: App,
    entity: str | Mapping[str, str],
    spine: Spine,
    pinned: Mapping[str, TopicRange],
    reader: SourceReader,
    progress: Progress | None,
) -> tuple[
    pa.Table, list[TopicRange], dict[str, int], list[MissingHistory], dict[str, dict[str, int]]
]:
    """The dataset's rows, the ranges read with their counts, in topic order, the records
    of each topic left out because no feature could read them (`unusable_records`), the
    rows of each table whose history is gone (only tables with such rows), and what got a
    default silently (the manifest's fields of that name)."""
    # one entity (the spine's ``entity`` column) or related ones (name -> id column)
    columns = {entity: "entity"} if isinstance(entity, str) else dict(entity)
    tables = [t for t in app.features.tables if t.entity.name in columns]
    tabled = {t.source for t in tables}
    sources, ranges, unusable, gaps = {}, [], {}, {}
    for topic in sorted(pinned):
        if topic in tabled:
            compacted = log.describe_topic(topic).config.compact
            gaps[topic] = Gaps(pinned[topic], compacted=compacted)
        with collector_paused():
            sources[topic], read = read_events(
                log,
                app.features,
                topic,
                pinned[topic],
                reader.decoder(topic),
                progress=progress,
                gaps=gaps.get(topic),
            )
        ranges.append(read)
        if unusable_records(sources[topic]):
            unusable[topic] = unusable_records(sources[topic])
    missing = [
        MissingHistory.of(
            t, sources[t.source], gaps[t.source], entity_view(spine.table, columns[t.entity.name])
        )
        for t in tables
    ]
    report = BuildReport()
    if isinstance(entity, str):
        rows = build(app.features, sources, spine.table, entity=entity, report=report)
    else:
        rows = build(app.features, sources, spine.table, entities=columns, report=report)
    silent = {
        "defaulted": report.defaulted,
        "derived_errors": {n: c for n, c in report.derived_errors.items() if c},
        "before_first_record": before_first_record(tables, sources, spine.table),
    }
    return spine.restore(rows), ranges, unusable, [m for m in missing if m.count], silent


def application_spec(manifest: Manifest, moved: str | None = None) -> str:
    """Where the application of `manifest` is declared (``module:attribute``): `moved` if
    given (it moved since), else the one the manifest recorded.

    The caller loads it (`loopline.app.load_app`) and passes it to `rebuild`; a
    `DatasetError` says what to do when the manifest does not know.

    >>> import msgspec
    >>> from loopline.features.offline.manifests import SpineSource
    >>> manifest = Manifest(
    ...     app="shop", app_spec="shop:app", entity="member", features=[], fingerprint="ab",
    ...     sources=[], spine=SpineSource(entity_column="member_id", time_column="at", rows=0),
    ...     output="train.parquet", rows=0, sha256="cd")
    >>> application_spec(manifest), application_spec(manifest, "shop.v2:app")
    ('shop:app', 'shop.v2:app')
    >>> application_spec(msgspec.structs.replace(manifest, app_spec=None))
    Traceback (most recent call last):
    ...
    loopline.features.offline.manifests.DatasetError: the manifest does not say where application 'shop' is declared (it was built from an App object, not a module:attribute name): pass it with --app
    """
    spec = moved if moved is not None else manifest.app_spec
    if spec is None:
        raise DatasetError(
            f"the manifest does not say where application {manifest.app!r} is declared (it was "
            "built from an App object, not a module:attribute name): pass it with --app"
        )
    return spec


def _same_features(manifest: Manifest, app: App) -> None:
    found = app.features.fingerprint()
    if found != manifest.fingerprint:
        named = app.spec or app.name
        raise DatasetError(
            f"the features of {named!r} are not the ones the dataset was built with "
            f"(fingerprint {found[:12]}... now, {manifest.fingerprint[:12]}... then): check "
            "out the code the dataset was built with, then rebuild"
        )


def _rebuild_spine(manifest: Manifest, spine: str | Path | None) -> Path:
    path = Path(spine if spine is not None else manifest.spine.file or "")
    if not path.is_file():
        raise DatasetError(
            f"the spine file {str(path)!r} of the manifest is gone: pass a copy of it with "
            "--spine FILE"
        )
    found = file_sha256(path)
    if found != manifest.spine.sha256:
        raise DatasetError(
            f"the spine file {str(path)!r} is not the one the dataset was built from "
            f"(sha256 {found[:12]}... now, {str(manifest.spine.sha256)[:12]}... then): "
            "pass the original with --spine FILE"
        )
    return path


def _moved(source: SpineSource, spine: str | Path) -> SpineSource:
    return SpineSource(
        entity_column=source.entity_column,
        time_column=source.time_column,
        rows=source.rows,
        file=str(Path(spine).resolve()),
        sha256=source.sha256,
        topic=source.topic,
    )


def _same_records(then: TopicRange, now: TopicRange, manifest_format: int) -> None:
    """Raise `DatasetError` unless `now` read the very records `then` did.

    A manifest of format 1 digested its ranges another way: only the counts compare (the
    dataset's own SHA-256 still proves the rebuilt rows the same).
    """
    before = {p.partition: p for p in then.partitions}
    for p in now.partitions:
        old = before[p.partition]
        digests = (p.sha256, old.sha256) if manifest_format >= 2 else ("", "")
        if p.records != old.records or digests[0] != digests[1]:
            raise DatasetError(
                f"topic {now.topic!r} partition {p.partition} holds other records in offsets "
                f"[{p.start}, {p.end}) than when the dataset was built ({old.records} records "
                f"then, {p.records} now): compaction removed some, or the topic was created "
                "again. The dataset cannot be rebuilt from this log; build a new one"
            )
