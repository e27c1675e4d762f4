"""One chunk of rows on its way to a topic: validated, keyed, stamped and encoded.

The per-row half of `loopline.connectors.files`. A chunk is converted in one
msgspec call while every row is good, and row by row once one is not, so a
file with a few bad rows costs little more than a clean one. Every row ends
up either as a value for the topic or as a dead letter with the reason; a
row too large to be a record (`MAX_RECORD_BYTES`) is a dead letter too, and
a dead letter keeps its row's event time for a replay.

>>> plan = Plan(None, None, msgspec.json.encode, "", None, None, key="k", time_column=None)
>>> out = encode_chunk(plan, Chunk([{"k": "a"}, {"x": 1}], first=1), "f.csv")
>>> out.values, out.keys
([b'{"k":"a"}'], [b'a'])
>>> [value for name, value in out.dead[0][2] if name in ("loopline.dlq.reason", "loopline.dlq.topic")]
[b"row 2: no value in key column 'k'", b'f.csv:2']
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import msgspec

from loopline.connectors._readers import Chunk, Malformed
from loopline.connectors._times import row_time
from loopline.contracts.codecs import ContractViolation
from loopline.log import Headers, timestamp_problem
from loopline.stream.deadletters import dead_letter

_TIME_HINT = "use ISO-8601 such as 2024-05-01T12:00:00Z, or epoch seconds or milliseconds"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MILLIS_FROM = 100_000_000_000  # epoch numbers from here on are milliseconds
# The largest record (key and value) a file row may become: just under librdkafka's default
# message.max.bytes (1,000,000, which counts headers and framing too), as Kafka refuses larger
# ones. The embedded log would take them, but a file ingests the same on either log.
MAX_RECORD_BYTES = 999_000
# A dead letter keeps this much of a row: one too large for the topic is too large for its .dlq.
DEAD_VALUE_BYTES = 1 << 16


@dataclass
class Plan:
    """Everything decided once, before the first row, so the per-row path only executes it."""

    record_type: Any  # the contract's record type, or None: rows are written as they are
    rows_type: Any  # list[record_type], to validate a whole chunk in one call
    encode: Callable[[Any], bytes]
    label: str  # "contract 'clicks' v3", in reasons
    contract: str | None
    version: int | None
    key: str | None
    time_column: str | None
    datetime_fields: tuple[str, ...] = ()  # fields where epoch milliseconds are read too


@dataclass
class Encoded:
    """A chunk ready to commit: values (with keys and timestamps) for the topic, dead letters."""

    values: list[bytes]
    keys: list[bytes | None] | None
    times: list[int] | None
    dead: list[tuple[bytes | None, bytes | None, Headers]]


def encode_chunk(plan: Plan, chunk: Chunk, path: str) -> Encoded:
    """Every row of `chunk` (read from `path`) as a value for the topic or a dead letter."""
    rows = chunk.rows
    reasons: dict[int, str] = {}
    if chunk.malformed:
        reasons.update((i, r.reason) for i, r in enumerate(rows) if type(r) is Malformed)
    records = _validate(plan, rows, reasons) if plan.record_type is not None else rows
    keys = _keys(plan.key, rows, reasons) if plan.key is not None else None
    times = _times(plan.time_column, chunk, reasons) if plan.time_column is not None else None
    values = _values(plan.encode, records, reasons)
    _check_sizes(values, keys, reasons)
    if not reasons:
        return Encoded(values, keys, times, [])
    unit = "line" if chunk.lines is not None else "row"
    dead = []
    for i, reason in sorted(reasons.items()):
        number = chunk.number(i)
        raw = chunk.raw[i] if chunk.raw is not None else _row_bytes(rows[i])
        if len(raw) > DEAD_VALUE_BYTES:
            reason += (
                f" (this dead letter keeps the first {DEAD_VALUE_BYTES:,} of {len(raw):,} bytes)"
            )
            raw = raw[:DEAD_VALUE_BYTES]
        dead.append(
            dead_letter(
                None,
                f"{unit} {number}: {reason}",
                plan.contract,
                plan.version,
                key=keys[i] if keys is not None else None,
                value=raw,
                source=f"{path}:{number}",
                timestamp=_dead_time(plan.time_column, rows[i], times[i] if times else None),
            )
        )
    good = [i for i in range(len(rows)) if i not in reasons]
    return Encoded(
        [values[i] for i in good],
        [keys[i] for i in good] if keys is not None else None,
        [times[i] for i in good] if times is not None else None,
        dead,
    )


def _validate(plan: Plan, rows: list[Any], reasons: dict[int, str]) -> list[Any]:
    """The chunk's rows as records of the contract; None (and a reason) where a row breaks it."""
    if not reasons:
        try:  # one call for the whole chunk while every row is good; row by row otherwise
            return msgspec.convert(rows, plan.rows_type, strict=False)
        except msgspec.ValidationError:
            pass
    convert, rtype, out = msgspec.convert, plan.record_type, []
    for i, row in enumerate(rows):
        if i in reasons:
            out.append(None)
            continue
        try:
            out.append(convert(row, rtype, strict=False))
        except msgspec.ValidationError as exc:
            record = _with_millis(row, plan, rtype)
            out.append(record)
            if record is None:
                reasons[i] = f"{plan.label}: {exc}"
    return out


def _with_millis(row: Any, plan: Plan, rtype: Any) -> Any:
    """`row` as a record once its epoch-millisecond datetimes are read as such; else None.

    msgspec reads a number as epoch seconds, and says "out of range" to
    milliseconds, the unit of Avro's timestamp-millis and of most event feeds.
    """
    fixed = None
    for name in plan.datetime_fields:
        try:
            millis = _epoch_millis(row.get(name))
            if millis is not None:
                fixed = fixed or dict(row)
                fixed[name] = _EPOCH + datetime.timedelta(milliseconds=millis)
        except (ValueError, OverflowError):
            continue
    if fixed is None:
        return None
    try:
        return msgspec.convert(fixed, rtype, strict=False)
    except msgspec.ValidationError:
        return None


def _epoch_millis(value: Any) -> int | float | None:
    """`value` if it reads as a number of epoch milliseconds (an int, a float or their text)."""
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isascii() and text.isdigit() else float(text)
    elif not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return value if _MILLIS_FROM <= value < 1e15 else None


def _keys(column: str, rows: list[Any], reasons: dict[int, str]) -> list[bytes | None]:
    """Each row's key: its `column` as text, as bytes; a reason where the row has none."""
    try:  # C-speed passes while every row is a dict with a str key
        keys = list(map(str.encode, map(dict.get, rows, repeat(column))))
    except TypeError:
        raw = [r.get(column) if type(r) is dict else None for r in rows]
        keys = [k.encode() if type(k) is str else _key_bytes(k) for k in raw]
    if None in keys:
        for i, k in enumerate(keys):
            if k is None and i not in reasons:
                reasons[i] = f"no value in key column {column!r}"
    return keys


def _key_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


def _times(column: str, chunk: Chunk, reasons: dict[int, str]) -> list[int]:
    """Event time (ms) of each row; a reason for each row without one (its entry stays None)."""
    times: list[Any] = chunk.times if chunk.times is not None else [None] * len(chunk.rows)
    times = list(times)
    for i, t in enumerate(times):
        if t is not None or i in reasons:
            continue
        value = chunk.rows[i].get(column)
        if value is None:
            reasons[i] = f"no value in time column {column!r}"
            continue
        try:
            times[i] = row_time(value)
        except ValueError as exc:
            reasons[i] = f"cannot read event time from column {column!r}: {exc} ({_TIME_HINT})"
    # Every time, however it was read, must be one the log can take (Kafka refuses records
    # stamped before 1970 or over an hour ahead): such a row is a dead letter, not a failure.
    now = time.time_ns() // 1_000_000
    for i, t in enumerate(times):
        if t is not None and i not in reasons and (problem := timestamp_problem(t, now)):
            reasons[i] = f"event time in column {column!r}: {problem}"
    return times


def _dead_time(column: str | None, row: Any, read: int | None) -> int | None:
    """The event time of a dead row where it has a usable one, for a replay to restore."""
    if read is None and column is not None and type(row) is dict:
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            read = row_time(row[column]) if row.get(column) is not None else None
    if read is None or timestamp_problem(read, time.time_ns() // 1_000_000):
        return None
    return read


_ENCODE_ERRORS = (ContractViolation, TypeError, ValueError, OverflowError, msgspec.EncodeError)


def _values(encode: Callable[[Any], bytes], records: list[Any], reasons: dict[int, str]) -> list:
    """Each record encoded (None, with a reason, where it cannot be)."""
    if not reasons:
        try:
            return list(map(encode, records))
        except _ENCODE_ERRORS:
            pass
    out: list[bytes | None] = []
    for i, record in enumerate(records):
        if i in reasons:
            out.append(None)
            continue
        try:
            out.append(encode(record))
        except _ENCODE_ERRORS as exc:
            out.append(None)
            reasons[i] = f"cannot encode: {exc}"
    return out


def _check_sizes(
    values: list[bytes | None], keys: list[bytes | None] | None, reasons: dict[int, str]
) -> None:
    """A reason for each record over `MAX_RECORD_BYTES`, which no Kafka topic takes by default."""
    limit = MAX_RECORD_BYTES
    for i, value in enumerate(values):
        if value is None or len(value) <= limit // 2 or i in reasons:
            continue
        size = len(value) + (len(keys[i] or b"") if keys is not None else 0)
        if size > limit:
            reasons[i] = (
                f"the record is {size:,} bytes, over the {limit:,}-byte limit of a record; "
                "split the row or move its large cells elsewhere"
            )


def _row_bytes(row: Any) -> bytes:
    """A row as read, for its dead letter: the raw text of a malformed row, else JSON."""
    if type(row) is Malformed:
        return row.raw
    try:
        return msgspec.json.encode(row, enc_hook=str)
    except Exception:  # a dead letter must be written whatever the row holds
        return repr(row).encode()
