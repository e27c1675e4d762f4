"""Files into topics: CSV, JSON lines and Parquet, checked by a contract, written exactly once.

`ingest_file` reads a file in chunks and validates every row against the
topic's contract, converting CSV strings to the contract's types (``"7"``
becomes ``7``, an empty cell of an optional field becomes None). Rows that
pass go to the topic, keyed by a column and stamped with an event-time
column if asked; rows that do not go to ``<topic>.dlq`` with the reason
(row number, field, what was wrong) and the row as read. Nothing stops the
ingest but a file that cannot be read at all.

Each chunk is one transaction, together with a progress record in the
compacted topic ``_loopline_ingest``. An ingest that is interrupted, even by
``kill -9``, resumes after the last committed chunk when it is run again on
the same file, and no row reaches the topic twice. A file is known by its
content (SHA-256), so the same content ingested into the same topic again,
under any name and with the same options, is passed over: the report says
every row was skipped (``restart=True`` writes them again). A topic deleted
and created again is another topic: its ingests start afresh.

>>> import tempfile, pathlib
>>> from loopline.log import open_log
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "clicks.csv").write_text(
...     "member_id,item,at\\nm-1,7,2024-05-01T12:00:00Z\\nm-2,seven,2024-05-01T12:00:01Z\\n")
>>> log = open_log(f"embedded:{folder / 'log'}")
>>> log.create_topic("clicks")
>>> registry = LogRegistry(log)
>>> _ = registry.register("clicks", {"type": "record", "name": "Click", "fields": [
...     {"name": "member_id", "type": "string"}, {"name": "item", "type": "long"},
...     {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})
>>> _ = registry.bind("clicks", "clicks")
>>> ingest_file(log, folder / "clicks.csv", "clicks", key="member_id", time_column="at",
...             registry=registry)
IngestReport(read=2, produced=1, dead_lettered=1, skipped=0)
>>> ingest_file(log, folder / "clicks.csv", "clicks", key="member_id", time_column="at",
...             registry=registry)  # the same ingest again: nothing left to do
IngestReport(read=0, produced=0, dead_lettered=0, skipped=2)
>>> [r.value for r in log.consumer(None, ["clicks"], reset="earliest").poll(timeout=1)]
[b'{"member_id":"m-1","item":7,"at":"2024-05-01T12:00:00Z"}']
>>> log.close()
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec
from msgspec import inspect as mi

from loopline.connectors._progress import (
    PROGRESS_TOPIC,
    IngestOptions,
    IngestProgress,
    ensure_topic,
    progress_key,
    read_progress,
)
from loopline.connectors._readers import columns_of, count_rows, format_of, read_chunks
from loopline.connectors._rows import Encoded, Plan, encode_chunk
from loopline.contracts.registry import LogRegistry
from loopline.contracts.schemas import record_type
from loopline.contracts.topics import codec_for
from loopline.log import Log, Producer, TopicExists
from loopline.stream.deadletters import dlq_topic

__all__ = ["IngestReport", "count_rows", "ingest_file"]

T = TypeVar("T")


@dataclass
class IngestReport:
    """What one run of `ingest_file` did.

    `read` rows were read in this run, and each of them was either `produced`
    to the topic or `dead_lettered` to ``<topic>.dlq``:
    ``read == produced + dead_lettered``. `skipped` rows were passed over
    because an earlier, interrupted run of the same file had ingested them.
    `as_text` are the CSV columns whose every value was written as a string,
    since no contract gave them types (a feature summing one of them
    dead-letters each record: docs/decisions/0008).
    """

    read: int = 0
    produced: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    as_text: list[str] = field(default_factory=list, compare=False, repr=False)


def ingest_file(
    log: Log,
    path: str | Path,
    topic: str,
    *,
    contract: str | None = None,
    key: str | None = None,
    time_column: str | None = None,
    registry: LogRegistry | None = None,
    encoding: str | None = None,
    chunk_rows: int = 10_000,
    progress: Callable[[int], None] | None = None,
    restart: bool = False,
) -> IngestReport:
    """Write the rows of the file at `path` to `topic`, exactly once; return what was done.

    The format comes from the extension: ``.csv``, ``.jsonl``/``.ndjson``/``.json``
    (JSON lines) or ``.parquet``. Rows are validated against `contract` (the
    name of a registered contract), else against the contract `topic` is
    bound to, and encoded as the binding says (or as `encoding`, ``json`` or
    ``avro``); with neither, rows are written as JSON objects, unchecked.
    `key` names the column whose value keys each record; `time_column` the
    column that holds its event time (ISO-8601, or epoch seconds or
    milliseconds). `progress` is called with the number of rows finished after
    each chunk of `chunk_rows` rows (rows passed over on a resume count too,
    reported first); see `count_rows` for the total.

    A run resumes where an interrupted run of the same ingest stopped: the
    same file content into the same topic (as created: a topic deleted and
    created again is another) with the same `key`, `time_column`, contract and
    encoding. `restart` starts from the first row whatever an earlier run did.

    Raises ValueError before writing anything if the file type is unknown or
    a column named by `key` or `time_column`, or required by the contract, is
    not in the file (for JSON lines: in none of its first rows).
    """
    path = Path(path)
    fmt = format_of(path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if not path.is_file():
        raise FileNotFoundError(f"no file {str(path)!r} to ingest")
    log.describe_topic(topic)  # TopicNotFound says how to create it
    plan = _plan(log, registry, topic, contract, encoding, key, time_column)
    columns = columns_of(path, fmt)
    if columns is None:
        _check_sampled(plan, path)
    null_columns = _check_columns(plan, columns, path, fmt)
    as_text = list(columns or ()) if fmt == "csv" and plan.record_type is None else []

    options = IngestOptions(
        key=key, time_column=time_column, contract=plan.contract, encoding=encoding
    )
    ensure_topic(log)
    state_key = progress_key(log, topic, _file_id(path), options)
    # The producer comes first: claiming the transactional id aborts whatever an
    # interrupted run left open, so the progress read next is final.
    fence = hashlib.sha256(state_key).hexdigest()[:16]
    producer = log.producer(transactional_id=f"loopline-ingest-{topic}-{fence}")
    try:
        state = IngestProgress() if restart else read_progress(log, state_key)
        report = IngestReport(skipped=state.rows, as_text=as_text)
        if state.done:
            return report
        if state.rows and progress is not None:
            progress(state.rows)
        chunks = read_chunks(
            path,
            fmt,
            chunk_rows=chunk_rows,
            skip=state.rows,
            null_columns=null_columns,
            time_column=plan.time_column,
        )
        run = _Run(log, producer, topic, str(path), state_key, state)
        for chunk, last in _with_last(chunks):
            out = encode_chunk(plan, chunk, str(path))
            run.commit(out, len(chunk.rows), last)
            report.read += len(chunk.rows)
            report.produced += len(out.values)
            report.dead_lettered += len(out.dead)
            if progress is not None:
                progress(len(chunk.rows))
        if not run.state.done:  # an empty file, or nothing after the rows skipped
            run.commit(Encoded([], None, None, []), 0, True)
        return report
    finally:
        producer.close()


def _plan(
    log: Log,
    registry: LogRegistry | None,
    topic: str,
    contract: str | None,
    encoding: str | None,
    key: str | None,
    time_column: str | None,
) -> Plan:
    if encoding not in (None, "json", "avro"):
        raise ValueError(f"unknown encoding {encoding!r}: use json or avro")
    own = registry is None
    registry = registry if registry is not None else LogRegistry(log)
    try:
        binding = registry.binding(topic)
        if binding is not None and encoding is not None and encoding != binding.encoding:
            raise ValueError(
                f"topic {topic!r} is bound to contract {binding.contract!r} with {binding.encoding} "
                f"values; writing {encoding} values would break its consumers"
            )
        chosen = encoding or (binding.encoding if binding is not None else "json")
        name = contract or (binding.contract if binding is not None else None)
        if name is None:
            if chosen == "avro":
                raise ValueError("Avro values need a contract: pass one, or bind the topic to one")
            return Plan(None, None, msgspec.json.Encoder().encode, "", None, None, key, time_column)
        version = registry.latest(name)
        rtype = record_type(version.schema)
        # A record that came out of msgspec.convert is valid: JSON needs no second check.
        encode = (
            codec_for(rtype, version, "avro", registry).encode
            if chosen == "avro"
            else msgspec.json.Encoder().encode
        )
        label = f"contract {name!r} v{version.version}"
        datetimes = tuple(
            f.name for f in mi.type_info(rtype).fields if _takes(f.type, mi.DateTimeType)
        )
        return Plan(
            rtype, list[rtype], encode, label, name, version.version, key, time_column, datetimes
        )
    finally:
        if own:
            registry.close()


def _check_columns(plan: Plan, columns: list[str] | None, path: Path, fmt: str) -> frozenset[str]:
    """Refuse a file that lacks a needed column; return the CSV columns whose "" means None."""
    if columns is None:  # JSON lines: rows may differ, each is checked on its own
        return frozenset()
    fields = mi.type_info(plan.record_type).fields if plan.record_type is not None else ()
    needed = {plan.key: "key", plan.time_column: "time"}
    needed.update({f.name: f"required by {plan.label}" for f in fields if f.required})
    missing = [f"{name!r} ({why})" for name, why in needed.items() if name and name not in columns]
    if columns and missing:
        raise ValueError(
            f"{str(path)!r} has no column {', '.join(missing)}; its columns are "
            f"{', '.join(map(repr, columns))}"
        )
    if fmt != "csv":
        return frozenset()
    # An empty CSV cell is a value only where the field takes strings and not None.
    return frozenset(
        f.name
        for f in fields
        if not (_takes(f.type, mi.StrType) and not _takes(f.type, mi.NoneType))
    )


_SAMPLED_ROWS = 1000


def _check_sampled(plan: Plan, path: Path) -> None:
    """Refuse a JSON-lines file none of whose first rows has the key or time column."""
    seen: set[str] = set()
    rows = 0
    with path.open("rb") as f:
        for line in f:
            if line.isspace():
                continue
            try:
                row = msgspec.json.decode(line)
            except (msgspec.DecodeError, RecursionError, UnicodeError):
                continue  # a bad row is dead-lettered when it is read
            if isinstance(row, dict):
                seen.update(row)
                rows += 1
            if rows >= _SAMPLED_ROWS:
                break
    needed = {plan.key: "key", plan.time_column: "time"}
    missing = [f"{name!r} ({why})" for name, why in needed.items() if name and name not in seen]
    if rows and missing:
        raise ValueError(
            f"{str(path)!r} has no column {', '.join(missing)} in any of its first "
            f"{rows} rows; their columns are {', '.join(map(repr, sorted(seen)))}"
        )


def _takes(t: mi.Type, kind: type) -> bool:
    return any(isinstance(x, kind) for x in (t.types if isinstance(t, mi.UnionType) else (t,)))


def _file_id(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Each item, and whether it is the last (so the last chunk's commit can say "done")."""
    it = iter(items)
    try:
        current = next(it)
    except StopIteration:
        return
    for upcoming in it:
        yield current, False
        current = upcoming
    yield current, True


# -- one chunk: commit ---------------------------------------------------------------------


class _Run:
    """Commits chunks: records, dead letters and the new progress in one transaction."""

    def __init__(
        self,
        log: Log,
        producer: Producer,
        topic: str,
        path: str,
        key: bytes,
        state: IngestProgress,
    ) -> None:
        self.log, self.producer, self.topic, self.path, self.key = log, producer, topic, path, key
        self.state = state
        self.dlq = dlq_topic(topic)
        self._dlq_ready = False

    def commit(self, out: Encoded, rows: int, last: bool) -> None:
        if out.dead and not self._dlq_ready:
            with contextlib.suppress(TopicExists):
                self.log.create_topic(self.dlq)
            self._dlq_ready = True
        state = IngestProgress(
            rows=self.state.rows + rows,
            produced=self.state.produced + len(out.values),
            dead_lettered=self.state.dead_lettered + len(out.dead),
            done=last,
            path=self.path,
        )
        producer = self.producer
        producer.begin_transaction()
        try:
            if out.values:
                producer.send_batch(self.topic, out.values, out.keys, out.times)
            for key, value, headers in out.dead:
                producer.send(self.dlq, value, key, headers=headers)
            producer.send(PROGRESS_TOPIC, state.encode(), self.key)
            producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                producer.abort_transaction()
            raise
        self.state = state
