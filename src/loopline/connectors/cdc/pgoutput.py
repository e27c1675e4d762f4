"""PostgreSQL's logical replication messages (``pgoutput``, protocol version 1), parsed.

The connector reads them with ``pg_logical_slot_peek_binary_changes`` (the SQL
interface; decision 0029): one ``bytea`` per message. Only what a change data
capture needs is parsed: a transaction's begin and commit (its end position
and commit time), the description of a table (its columns, their type ids and
which form the key), and a row inserted, updated or deleted. Column values
stay PostgreSQL's text form; `loopline.connectors.cdc.columns` converts them.

>>> begin = parse(b"B" + (0x1505790).to_bytes(8, "big") + (0).to_bytes(8, "big") + (726).to_bytes(4, "big"))
>>> begin
Begin(final_lsn=22042512, commit_time_ms=946684800000, xid=726)
>>> parse(b"I\\x00\\x00@\\x00N\\x00\\x02t\\x00\\x00\\x00\\x011n")
Change(op='c', relation=16384, row=('1', None), key_only=False)
>>> format_lsn(22042512), parse_lsn("0/1505790")
('0/1505790', 22042512)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# PostgreSQL's epoch (2000-01-01) in Unix milliseconds: commit times count microseconds from it.
_PG_EPOCH_MS = 946_684_800_000

# A value the message leaves out: an unchanged TOASTed column of an update (pgoutput's 'u').
UNCHANGED = object()


@dataclass(frozen=True)
class Begin:
    """A transaction starts; it commits at `final_lsn`, at `commit_time_ms`."""

    final_lsn: int
    commit_time_ms: int
    xid: int


@dataclass(frozen=True)
class Commit:
    """A transaction ends; `end_lsn` is the position after it, where a reader resumes."""

    commit_lsn: int
    end_lsn: int
    commit_time_ms: int


@dataclass(frozen=True)
class Column:
    """One column of a table as the message describes it."""

    name: str
    type_oid: int
    type_modifier: int
    in_key: bool


@dataclass(frozen=True)
class Relation:
    """A table's description, sent before its first change and again after it changed."""

    oid: int
    schema: str
    table: str
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Change:
    """A row inserted (``c``), updated (``u``) or deleted (``d``), in text form.

    For a delete, `row` holds the key columns only (`key_only`), None elsewhere.
    """

    op: str
    relation: int
    row: tuple[object, ...]
    key_only: bool


@dataclass(frozen=True)
class Truncate:
    """Every row of the tables `relations` removed."""

    relations: tuple[int, ...]


@dataclass(frozen=True)
class Other:
    """A message the connector has no use for (origin, type, message)."""

    kind: str


Message = Begin | Commit | Relation | Change | Truncate | Other


def parse(data: bytes) -> Message:
    """One pgoutput message from its bytes."""
    kind = data[:1]
    if kind == b"B":
        final_lsn, when, xid = struct.unpack_from(">QqI", data, 1)
        return Begin(final_lsn, _ms(when), xid)
    if kind == b"C":
        commit_lsn, end_lsn, when = struct.unpack_from(">QQq", data, 2)
        return Commit(commit_lsn, end_lsn, _ms(when))
    if kind == b"R":
        return _relation(data)
    if kind in (b"I", b"U", b"D"):
        return _change(data)
    if kind == b"T":
        (count,) = struct.unpack_from(">I", data, 1)
        return Truncate(struct.unpack_from(f">{count}I", data, 6))
    return Other(kind.decode("ascii", "replace"))


def format_lsn(lsn: int) -> str:
    """PostgreSQL's text form of a WAL position (``0/1505790``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """The WAL position of its text form."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _ms(pg_micros: int) -> int:
    return _PG_EPOCH_MS + pg_micros // 1000


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\x00", at)
    return data[at:end].decode("utf-8"), end + 1


def _relation(data: bytes) -> Relation:
    (oid,) = struct.unpack_from(">I", data, 1)
    schema, at = _cstring(data, 5)
    table, at = _cstring(data, at)
    identity = chr(data[at])
    (count,) = struct.unpack_from(">H", data, at + 1)
    at += 3
    columns = []
    for _ in range(count):
        flags = data[at]
        name, at = _cstring(data, at + 1)
        type_oid, modifier = struct.unpack_from(">Ii", data, at)
        at += 8
        columns.append(Column(name, type_oid, modifier, bool(flags & 1)))
    return Relation(oid, schema, table, identity, tuple(columns))


def _tuple(data: bytes, at: int) -> tuple[tuple[object, ...], int]:
    (count,) = struct.unpack_from(">H", data, at)
    at += 2
    values: list[object] = []
    for _ in range(count):
        kind = data[at : at + 1]
        at += 1
        if kind == b"n":
            values.append(None)
        elif kind == b"u":
            values.append(UNCHANGED)
        else:  # b"t" (text) or b"b" (binary, not asked for)
            (size,) = struct.unpack_from(">I", data, at)
            values.append(data[at + 4 : at + 4 + size].decode("utf-8"))
            at += 4 + size
    return tuple(values), at


def _change(data: bytes) -> Change:
    kind = data[:1]
    (relation,) = struct.unpack_from(">I", data, 1)
    at = 5
    if kind == b"I":  # 'N' then the new row
        row, _ = _tuple(data, at + 1)
        return Change("c", relation, row, False)
    if kind == b"U":  # optionally 'K' or 'O' and the old row, then 'N' and the new row
        if data[at : at + 1] in (b"K", b"O"):
            _, at = _tuple(data, at + 1)
        row, _ = _tuple(data, at + 1)
        return Change("u", relation, row, False)
    marker = data[at : at + 1]  # 'K': key columns only; 'O': the whole old row (FULL identity)
    row, _ = _tuple(data, at + 1)
    return Change("d", relation, row, marker == b"K")
