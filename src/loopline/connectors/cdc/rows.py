"""A table's rows as records: key, value, headers, in the one form loopline writes.

**The form** (decision 0029): the record's key is the primary key (one
column: its text, ``42``; several: a JSON object, ``{"a":1,"b":"x"}``); the
value is the row *after* the change as a JSON object of the contract's
fields, or no value at all (a tombstone) for a delete, so compaction keeps
the latest row and a table feature falls back to its default; the header
``loopline.cdc.op`` says what happened (``r`` read by the snapshot, ``c``
insert, ``u`` update, ``d`` delete) and ``loopline.cdc.lsn`` the commit's
position in the database's log. The record's timestamp is the commit time
(the snapshot's rows: the time the snapshot was taken), so a dataset built
as of T sees the table as committed at T.

>>> from loopline.connectors.cdc.columns import TableColumn
>>> shape = Shape([TableColumn("id", "int4", "b", False, None, True),
...                TableColumn("name", "text", "b", True, None, False)], ())
>>> key, value = shape.record(("7", "Ada"), "u")
>>> key, value
(b'7', b'{"id":7,"name":"Ada"}')
>>> shape.record(("7", None), "d")
(b'7', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from loopline.connectors.cdc.columns import TableColumn, UnmappableValue, converter
from loopline.connectors.cdc.pgoutput import UNCHANGED
from loopline.connectors.cdc.sources import CdcError

OP_HEADER = "loopline.cdc.op"
LSN_HEADER = "loopline.cdc.lsn"

_encode = msgspec.json.Encoder().encode


class Shape:
    """How the rows of one version of a table become records."""

    def __init__(self, columns: Sequence[TableColumn], key: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in columns)
        self._convert = tuple(converter(c.type_name, c.kind) for c in columns)
        wanted = tuple(key) or tuple(c.name for c in columns if c.in_key)
        if not wanted:
            raise CdcError(
                "the table has no primary key to key its records by: give it one, "
                "or name the key columns with --key"
            )
        missing = [k for k in wanted if k not in self.names]
        if missing:
            raise CdcError(
                f"key column {', '.join(map(repr, missing))} is not a column of the table "
                f"(columns: {', '.join(self.names)})"
            )
        self.key = wanted
        self._key_at = tuple(self.names.index(k) for k in wanted)

    def signature(self) -> tuple[tuple[str, str], ...]:
        """What decides the contract: column names and types, in order."""
        return tuple((c.name, c.type_name) for c in self.columns)

    def record(self, row: Sequence[Any], op: str) -> tuple[bytes, bytes | None]:
        """Key and value of `row` (PostgreSQL text forms); raises `UnmappableValue`."""
        if len(row) != len(self.names):
            raise UnmappableValue(
                f"the change has {len(row)} columns where the table had {len(self.names)}"
            )
        fields: dict[str, Any] = {}
        for name, convert, text in zip(self.names, self._convert, row, strict=True):
            if text is UNCHANGED:
                raise UnmappableValue(
                    f"column {name!r} is a large (TOASTed) value the update left unchanged, "
                    "and PostgreSQL did not send it: set REPLICA IDENTITY FULL on the table"
                )
            try:
                fields[name] = None if text is None else convert(text)
            except ValueError as exc:
                raise UnmappableValue(f"column {name!r}: {exc}") from None
        key = self._key(fields)
        return key, None if op == "d" else _encode(fields)

    def _key(self, fields: dict[str, Any]) -> bytes:
        if len(self.key) == 1:
            value = fields[self.key[0]]
            if value is None:
                raise UnmappableValue(f"key column {self.key[0]!r} is null")
            return str(value).encode() if not isinstance(value, bytes) else value
        return _encode({k: fields[k] for k in self.key})
