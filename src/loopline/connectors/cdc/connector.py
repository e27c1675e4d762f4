"""loopline's own change data capture: a PostgreSQL table into a topic, exactly once.

`run_cdc` first copies the table's rows as of the instant its replication
slot starts (one log transaction), then follows the slot: each batch of
whole database transactions is one log transaction holding their records,
their dead letters, and the position after the last of them (in
``_loopline_ingest``, as file ingests keep theirs). Only after that commit is
the slot told to move on. A connector killed at any point (``kill -9``)
resumes from the position in the log: the transactions at or before it,
which the slot may still hold, are passed over, so no change is lost and
none is written twice.

The topic's contract is derived from the table's columns (`columns`) and
registered under the topic's name with the backward rule; when the table
changes (pgoutput describes it again), the new columns are registered as
the next version. A version the rule refuses sends the changes of that
database transaction to ``<topic>.dlq`` with the reason, commits them with
the position, and stops with `CdcError`: nothing is published under a
contract it breaks. (Set the contract's mode to ``none`` to accept the
change, then run again.)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field

import msgspec
import psycopg

from loopline.connectors._progress import PROGRESS_TOPIC, ensure_topic, read_latest
from loopline.connectors.cdc import database
from loopline.connectors.cdc.columns import TableColumn, UnmappableValue, avro_schema
from loopline.connectors.cdc.pgoutput import (
    Begin,
    Change,
    Commit,
    Relation,
    Truncate,
    format_lsn,
    parse,
)
from loopline.connectors.cdc.rows import LSN_HEADER, OP_HEADER, Shape
from loopline.connectors.cdc.sources import CdcError, CdcSource, list_sources
from loopline.contracts.compatibility import IncompatibleSchema
from loopline.contracts.registry import LogRegistry
from loopline.log import Headers, Log, Producer, TopicExists
from loopline.stream.deadletters import dead_letter, dlq_topic

logger = logging.getLogger(__name__)


class CdcProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a capture stands: every change committed before `lsn` is in the topic."""

    lsn: str = ""
    snapshot_done: bool = False
    snapshot_rows: int = 0
    changes: int = 0
    dead_lettered: int = 0

    def encode(self) -> bytes:
        return msgspec.json.encode(self)


_decode_progress = msgspec.json.Decoder(CdcProgress).decode


def progress_key(log: Log, source: CdcSource) -> bytes:
    """The key of the source's progress: its name and its topic as created."""
    return f"cdc:{source.name}:{log.describe_topic(source.topic).id}".encode()


def read_cdc_progress(log: Log, source: CdcSource) -> CdcProgress:
    """The source's committed progress (empty before its snapshot)."""
    latest = read_latest(log, progress_key(log, source), _decode_progress)
    return CdcProgress() if latest is None else _decode_progress(latest)


@dataclass
class CdcReport:
    """What one `run_cdc` did: snapshot rows, changes written, dead letters, transactions."""

    snapshot_rows: int = 0
    changes: int = 0
    dead_lettered: int = 0
    transactions: int = 0
    lsn: str = ""
    contract_versions: list[int] = field(default_factory=list)
    removed: bool = False  # the capture was removed (`loopline cdc remove`) while it ran


_Out = tuple[bytes | None, bytes | None, Headers, int]  # key, value, headers, timestamp


def run_cdc(
    log: Log,
    source: CdcSource,
    *,
    stop: threading.Event | None = None,
    poll_interval: float = 0.1,
    batch_changes: int = 10_000,
    until_idle: bool = False,
) -> CdcReport:
    """Capture `source` into its topic until `stop` is set (or, `until_idle`, nothing is left).

    Raises `CdcError` when the database cannot be read, the table has no key,
    or the table changed in a way its contract's rule refuses. A capture removed
    while it runs (its slot dropped under it) ends the run: `CdcReport.removed`.
    """
    stop = stop or threading.Event()
    with contextlib.suppress(TopicExists):
        log.create_topic(source.topic)
    ensure_topic(log)
    key = progress_key(log, source)
    fence = hashlib.sha256(key).hexdigest()[:16]
    # The producer first: claiming the transactional id aborts what a killed run left open.
    producer = log.producer(transactional_id=f"loopline-cdc-{source.name}-{fence}")
    registry = LogRegistry(log)
    conn = database.connect(source)
    try:
        run = _Run(log, producer, registry, conn, source, key)
        run.progress = read_cdc_progress(log, source)
        oid = database.table_oid(conn, source)
        database.ensure_publication(conn, source)
        if not run.progress.snapshot_done:
            run.snapshot(oid)
        elif not database.slot_exists(conn, source):
            raise CdcError(
                f"replication slot {source.slot!r} of CDC {source.name!r} is gone from the "
                "database, so the changes since the last run cannot be read: remove the "
                "CDC and add it again (its next run copies the table anew)"
            )
        while not stop.is_set():
            try:
                messages = database.peek_changes(conn, source, batch_changes)
            except psycopg.errors.UndefinedObject:  # the slot or the publication is gone
                if _removed(log, source):
                    run.report.removed = True
                    break
                raise CdcError(
                    f"replication slot {source.slot!r} or publication {source.publication!r} "
                    f"of CDC {source.name!r} was dropped while it ran, and the CDC was not "
                    "removed: remove it and add it again (its next run copies the table anew)"
                ) from None
            if messages:
                run.apply(messages)
            elif until_idle:
                break
            else:
                stop.wait(poll_interval)
        run.report.lsn = run.progress.lsn
        return run.report
    finally:
        conn.close()
        registry.close()
        producer.close()


def _removed(log: Log, source: CdcSource, grace: float = 5.0) -> bool:
    """Whether `source` is no longer among the CDC sources; `loopline cdc remove` forgets it
    before it drops the slot, so a slot gone with the source still listed waits `grace` s."""
    deadline = time.monotonic() + grace
    while True:
        if source.name not in {s.name for s in list_sources(log)}:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


class _Run:
    def __init__(
        self,
        log: Log,
        producer: Producer,
        registry: LogRegistry,
        conn: psycopg.Connection,
        source: CdcSource,
        key: bytes,
    ) -> None:
        self.log, self.producer, self.registry, self.conn = log, producer, registry, conn
        self.source, self.key = source, key
        self.progress = CdcProgress()
        self.report = CdcReport()
        self.shapes: dict[int, Shape] = {}
        self.dlq = dlq_topic(source.topic)
        self._dlq_ready = False

    # -- contract ----------------------------------------------------------------------

    def shape_of(self, columns: list[TableColumn]) -> Shape:
        """The shape of these columns, its contract registered (and the topic bound to it)."""
        shape = Shape(columns, self.source.key)
        schema = avro_schema(self.source.schema, self.source.table, columns)
        version = self.registry.register(self.source.topic, schema)
        binding = self.registry.binding(self.source.topic)
        if binding is None:
            self.registry.bind(self.source.topic, self.source.topic, "json")
        self.report.contract_versions.append(version.version)
        return shape

    # -- the initial copy ----------------------------------------------------------------

    def snapshot(self, oid: int) -> None:
        conn, source = self.conn, self.source
        database.drop_slot(conn, source)  # an earlier snapshot that never committed
        with database.new_slot_snapshot(source) as (start, reader):
            shape = self.shape_of(database.table_columns(reader, oid))
            self.shapes[oid] = shape
            at = int(time.time() * 1000)
            headers = [(OP_HEADER, b"r"), (LSN_HEADER, format_lsn(start).encode())]
            out: list[_Out] = []
            dead: list[tuple[bytes | None, bytes | None, Headers]] = []
            columns = ", ".join(f'"{n}"' for n in shape.names)
            pg = reader.pgconn
            pg.exec_(
                f"DECLARE loopline_snapshot NO SCROLL CURSOR FOR SELECT {columns} "
                f"FROM {source.qualified}".encode()
            )
            while True:
                result = pg.exec_(b"FETCH 10000 FROM loopline_snapshot")
                if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                    raise CdcError(
                        f"reading {source.schema}.{source.table} failed: "
                        f"{(result.error_message or b'').decode(errors='replace').strip()}"
                    )
                if result.ntuples == 0:
                    break
                for i in range(result.ntuples):
                    row = tuple(_str(result.get_value(i, j)) for j in range(result.nfields))
                    self._one(shape, row, "r", headers, at, out, dead)
            progress = CdcProgress(
                lsn=format_lsn(start),
                snapshot_done=True,
                snapshot_rows=len(out),
                dead_lettered=len(dead),
            )
            self._commit(out, dead, progress)
            self.report.snapshot_rows = len(out)
            self.report.dead_lettered += len(dead)
        logger.info("CDC %s: copied %d rows as of %s", source.name, len(out), format_lsn(start))

    # -- changes -----------------------------------------------------------------------

    def apply(self, messages: list[bytes]) -> None:
        """Write the whole transactions in `messages` not yet in the log, then move the slot."""
        done = _lsn(self.progress.lsn)
        out: list[_Out] = []
        dead: list[tuple[bytes | None, bytes | None, Headers]] = []
        pending: list[_Out] = []
        pending_dead: list[tuple[bytes | None, bytes | None, Headers]] = []
        begin: Begin | None = None
        refused: str | None = None
        last = done
        changes = 0
        for data in messages:
            message = parse(data)
            if isinstance(message, Begin):
                begin, pending, pending_dead = message, [], []
            elif isinstance(message, Relation):
                if refused is None:
                    refused = self._relation(message)
            elif isinstance(message, Change) and begin is not None:
                headers = [(OP_HEADER, message.op.encode()), (LSN_HEADER, _text(begin))]
                shape = self.shapes.get(message.relation)
                if refused is not None or shape is None:
                    reason = refused or f"a change of an unknown table (oid {message.relation})"
                    pending_dead.append(self._dead(None, data, reason, headers))
                else:
                    self._one(
                        shape,
                        message.row,
                        message.op,
                        headers,
                        begin.commit_time_ms,
                        pending,
                        pending_dead,
                    )
            elif isinstance(message, Truncate) and begin is not None:
                reason = (
                    "TRUNCATE removed every row of the table; loopline writes no tombstones "
                    "for it (delete the rows instead, or add the CDC again to copy the table)"
                )
                pending_dead.append(self._dead(None, data, reason, []))
            elif isinstance(message, Commit):
                if (
                    message.end_lsn > done
                ):  # else: in the log already (a run killed before the slot moved)
                    out += pending
                    dead += pending_dead
                    changes += len(pending)
                    self.report.transactions += 1
                last = max(last, message.end_lsn)
                begin, pending, pending_dead = None, [], []
                if refused is not None:
                    break
        if last > done or out or dead:
            progress = CdcProgress(
                lsn=format_lsn(last),
                snapshot_done=True,
                snapshot_rows=self.progress.snapshot_rows,
                changes=self.progress.changes + changes,
                dead_lettered=self.progress.dead_lettered + len(dead),
            )
            self._commit(out, dead, progress)
            self.report.changes += changes
            self.report.dead_lettered += len(dead)
        if last > 0:
            database.advance(self.conn, self.source, format_lsn(last))
        if refused is not None:
            raise CdcError(refused)

    def _relation(self, message: Relation) -> str | None:
        """Take the table's new description; the reason it is refused, or None."""
        columns = database.table_columns(self.conn, message.oid)
        live = {c.name: c for c in columns}
        names = database.type_names(self.conn, [c.type_oid for c in message.columns])
        described = []
        for column in message.columns:
            type_name, kind = names.get(column.type_oid, ("text", "b"))
            now = live.get(column.name)
            described.append(
                TableColumn(
                    column.name,
                    type_name,
                    kind,
                    True if now is None else now.nullable,
                    None if now is None else now.default,
                    column.in_key,
                )
            )
        shape = self.shapes.get(message.oid)
        if shape is not None and shape.signature() == tuple(
            (c.name, c.type_name) for c in described
        ):
            return None
        try:
            self.shapes[message.oid] = self.shape_of(described)
        except IncompatibleSchema as exc:
            return (
                f"table {message.schema}.{message.table} changed in a way its contract refuses, "
                f"so CDC {self.source.name!r} stopped: {exc}. The changes since are in "
                f"{self.dlq}. To accept the change, set the contract's mode "
                f"(`loopline contracts mode {self.source.topic} none`) and run again"
            )
        return None

    # -- records -----------------------------------------------------------------------

    def _one(
        self,
        shape: Shape,
        row: tuple[object, ...],
        op: str,
        headers: Headers,
        timestamp: int,
        out: list[_Out],
        dead: list[tuple[bytes | None, bytes | None, Headers]],
    ) -> None:
        try:
            key, value = shape.record(row, op)
        except UnmappableValue as exc:
            raw = msgspec.json.encode(dict(zip(shape.names, map(_plain, row), strict=False)))
            dead.append(
                self._dead(
                    None,
                    raw,
                    f"{self.source.schema}.{self.source.table}: {exc}",
                    headers,
                    timestamp,
                )
            )
            return
        out.append((key, value, headers, timestamp))

    def _dead(
        self,
        key: bytes | None,
        value: bytes,
        reason: str,
        headers: Headers,
        timestamp: int | None = None,
    ) -> tuple[bytes | None, bytes | None, Headers]:
        k, v, letter = dead_letter(
            None,
            reason,
            None,
            None,
            key=key,
            value=value,
            source=self.source.topic,
            timestamp=timestamp,
        )
        return k, v, [*letter, *headers]

    def _commit(
        self,
        out: list[_Out],
        dead: list[tuple[bytes | None, bytes | None, Headers]],
        progress: CdcProgress,
    ) -> None:
        if dead and not self._dlq_ready:
            with contextlib.suppress(TopicExists):
                self.log.create_topic(self.dlq)
            self._dlq_ready = True
        producer = self.producer
        producer.begin_transaction()
        try:
            topic = self.source.topic
            for key, value, headers, timestamp in out:
                producer.send(topic, value, key, timestamp=timestamp, headers=headers)
            for key, value, headers in dead:
                producer.send(self.dlq, value, key, headers=headers)
            producer.send(PROGRESS_TOPIC, progress.encode(), self.key)
            producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                producer.abort_transaction()
            raise
        self.progress = progress


def _lsn(text: str) -> int:
    if not text:
        return 0
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _str(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _text(begin: Begin) -> bytes:
    return format_lsn(begin.final_lsn).encode()


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, str) else "(unchanged, not sent)"
