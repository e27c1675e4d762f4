"""How records and settings are written out: JSON lines, human sizes and durations.

A record's value is written as JSON: as it is when it is JSON (re-encoded
onto one line if it spans several), else as a string when it is UTF-8 text,
else as ``{"$base64": "..."}``. A key or header value is a string when it is
UTF-8, else the same base64 marker; a missing key or a tombstone value is
``null``.

>>> value_json(b'{"item": 7}'), value_json(b"plain text"), value_json(b"\\xff")
(b'{"item": 7}', b'"plain text"', b'{"$base64":"/w=="}')
>>> value_json(b'{\\n  "item": 7\\n}'), value_json(b"NaN"), value_json(None)
(b'{"item":7}', b'"NaN"', b'null')
>>> format_duration(604800000), format_duration(1500), format_duration(None)
('7d', '1500ms', 'forever')
>>> format_size(1073741824), format_size(500000000), format_size(None)
('1GiB', '500MB', 'unlimited')
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import click

from loopline.log.records import Record

BASE64_MARKER = "$base64"

_DURATIONS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))
_SIZES = (
    ("TiB", 2**40),
    ("GiB", 2**30),
    ("MiB", 2**20),
    ("KiB", 2**10),
    ("TB", 10**12),
    ("GB", 10**9),
    ("MB", 10**6),
    ("KB", 10**3),
)


def is_terminal(stream: str = "stdout") -> bool:
    """Whether `stream` (``stdout``, ``stderr`` or ``stdin``) is an interactive terminal."""
    handle = {"stdout": sys.stdout, "stderr": sys.stderr, "stdin": sys.stdin}[stream]
    try:
        return bool(handle.isatty())
    except (AttributeError, ValueError):
        return False


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; such a value is shown as the text it is.
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _bytes_as_text(data: bytes) -> str | dict[str, str]:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {BASE64_MARKER: base64.b64encode(data).decode("ascii")}


def value_json(value: bytes | None) -> bytes:
    """The JSON text, on one line, that stands for a record value (see the module docstring).

    A value that is JSON already on one line is passed through as it is: no
    decode-encode round trip changes its numbers or spacing, and it is faster.
    """
    if value is None:
        return b"null"
    try:
        text = value.decode("utf-8")
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _ENCODER.encode(_bytes_as_text(value)).encode("utf-8")
    if "\n" in text or "\r" in text:
        return _ENCODER.encode(obj).encode("utf-8")
    return value.strip()


def record_line(record: Record, meta: bool, value: bytes | None = None) -> bytes:
    """One output line (with newline) for `record`: its value, or with `meta` the whole record.

    `value` is the value's JSON when the caller made it already (decoded through
    a contract); by default it is `value_json` of the record's value.
    """
    if value is None:
        value = value_json(record.value)
    if not meta:
        return value + b"\n"
    head = _ENCODER.encode(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": None if record.key is None else _bytes_as_text(record.key),
        }
    )
    headers = _ENCODER.encode([[name, _bytes_as_text(data)] for name, data in record.headers])
    return b"".join(
        (
            head[:-1].encode("utf-8"),
            b',"value":',
            value,
            b',"headers":',
            headers.encode("utf-8"),
            b"}\n",
        )
    )


def _largest_unit(amount: int, units: tuple[tuple[str, int], ...]) -> str | None:
    for name, size in units:
        if amount >= size and amount % size == 0:
            return f"{amount // size}{name}"
    return None


def plural(count: int, noun: str) -> str:
    """``1 record``, ``2 records``.

    >>> plural(1, "record"), plural(0, "record")
    ('1 record', '0 records')
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_duration(ms: int | None) -> str:
    """`ms` in the largest unit that divides it (``7d``, ``90s``); ``forever`` for None."""
    if ms is None:
        return "forever"
    return _largest_unit(ms, _DURATIONS) or f"{ms}ms"


def format_size(size: int | None) -> str:
    """`size` bytes in the largest unit dividing it (``1GiB``, ``500MB``); None is ``unlimited``."""
    if size is None:
        return "unlimited"
    return _largest_unit(size, _SIZES) or f"{size}B"


def echo_table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    """Rows as a rich table on a terminal, else as tab-separated lines without a header."""
    if is_terminal("stdout"):
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, column in enumerate(columns):
            numeric = bool(rows) and all(row[i].isdigit() for row in rows)
            table.add_column(column, justify="right" if numeric else "left")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    else:
        for row in rows:
            click.echo("\t".join(row))
