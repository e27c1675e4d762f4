"""What the connector asks of PostgreSQL, through psycopg (v3): catalog, slot, snapshot, changes.

psycopg 3 has no client for the streaming replication protocol (its
``replication`` support is the connection parameter only), so changes are
read through the SQL interface, ``pg_logical_slot_peek_binary_changes`` with
the built-in ``pgoutput`` plugin, and the slot is moved on with
``pg_replication_slot_advance`` once the log has committed them
(decision 0029). The slot itself is created on a replication connection,
which exports a snapshot of the instant the slot starts at: the initial copy
of the table reads exactly the rows the slot's changes come after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from loopline.connectors.cdc.columns import TableColumn
from loopline.connectors.cdc.pgoutput import parse_lsn
from loopline.connectors.cdc.sources import CdcError, CdcSource

# The session settings whose text forms `columns.converter` reads.
_SESSION = "SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET extra_float_digits = 3"


def connect(source: CdcSource, **options: Any) -> psycopg.Connection:
    """A connection to the source's database, in UTC, with text forms the converters read."""
    try:
        conn = psycopg.connect(source.url, autocommit=True, **options)
    except psycopg.OperationalError as exc:
        raise CdcError(
            f"cannot connect to {source.display_url()} for CDC {source.name!r}: {str(exc).strip()}"
        ) from None
    if not options.get("replication"):
        conn.execute(_SESSION)
    return conn


def table_oid(conn: psycopg.Connection, source: CdcSource) -> int:
    """The table's oid; `CdcError` when it does not exist."""
    row = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (source.schema, source.table),
    ).fetchone()
    if row is None:
        raise CdcError(f"no table {source.schema}.{source.table} in {source.display_url()}")
    return int(row[0])


def table_columns(conn: psycopg.Connection, oid: int) -> list[TableColumn]:
    """The table's live columns in order, with their constant defaults evaluated."""
    rows = conn.execute(
        "SELECT a.attname, t.typname, t.typtype, NOT a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid), "
        "COALESCE(a.attnum = ANY(i.indkey), false) "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (oid,),
    ).fetchall()
    return [
        TableColumn(name, type_name, kind, nullable, _constant(conn, default), in_key)
        for name, type_name, kind, nullable, default, in_key in rows
    ]


def _constant(conn: psycopg.Connection, expression: str | None) -> str | None:
    """The text of a column default that is a constant (``0``, ``'x'::text``), else None."""
    if expression is None or "(" in expression:  # nextval(...), now(): no value to record
        return None
    row = conn.execute(
        f"SELECT ({expression})::text"
    ).fetchone()  # the expression is the catalog's own
    return None if row is None else row[0]


def type_names(conn: psycopg.Connection, oids: list[int]) -> dict[int, tuple[str, str]]:
    """``pg_type.typname`` and ``typtype`` of each type oid."""
    rows = conn.execute(
        "SELECT oid, typname, typtype FROM pg_type WHERE oid = ANY(%s)", (oids,)
    ).fetchall()
    return {int(oid): (name, kind) for oid, name, kind in rows}


def ensure_publication(conn: psycopg.Connection, source: CdcSource) -> None:
    """The publication of the source's table (pgoutput sends only published tables)."""
    found = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (source.publication,)
    ).fetchone()
    if found is None:
        conn.execute(f'CREATE PUBLICATION "{source.publication}" FOR TABLE {source.qualified}')


def slot_exists(conn: psycopg.Connection, source: CdcSource) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (source.slot,)
    ).fetchone()
    return row is not None


def drop_slot(conn: psycopg.Connection, source: CdcSource) -> None:
    if slot_exists(conn, source):
        conn.execute("SELECT pg_drop_replication_slot(%s)", (source.slot,))


def drop_publication(conn: psycopg.Connection, source: CdcSource) -> None:
    conn.execute(f'DROP PUBLICATION IF EXISTS "{source.publication}"')


@contextmanager
def new_slot_snapshot(source: CdcSource) -> Iterator[tuple[int, psycopg.Connection]]:
    """Create the slot; yield its start position and a transaction that sees the table as then.

    The replication connection that created the slot stays open until the
    snapshot is imported: its exported snapshot lives only as long as it does.
    """
    replication = connect(source, replication="database")
    try:
        result = replication.pgconn.exec_(
            f'CREATE_REPLICATION_SLOT "{source.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT'.encode()
        )
        if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise CdcError(f"cannot create replication slot {source.slot!r}: {message}")
        start = parse_lsn(result.get_value(0, 1).decode())
        snapshot = result.get_value(0, 2).decode()
        reader = connect(source)
        try:
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            reader.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        except BaseException:
            reader.close()
            raise
    finally:
        replication.close()
    try:
        yield start, reader
    finally:
        reader.close()


def peek_changes(conn: psycopg.Connection, source: CdcSource, limit: int) -> list[bytes]:
    """The pgoutput messages of the next whole transactions the slot holds (about `limit` rows)."""
    rows = conn.execute(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, "
        "'proto_version', '1', 'publication_names', %s)",
        (source.slot, limit, source.publication),
    ).fetchall()
    return [bytes(row[0]) for row in rows]


def advance(conn: psycopg.Connection, source: CdcSource, lsn: str) -> None:
    """Tell the slot that everything before `lsn` is in the log (the WAL behind it may go)."""
    conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (source.slot, lsn))
