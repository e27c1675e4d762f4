"""Event times of rows: ISO-8601 text, datetimes and dates, epoch seconds or milliseconds.

`row_time` reads one value; `column_times` reads a whole Arrow column at C
speed and gives the same answer for every value it can read, leaving the
rest (None) to `row_time`, which says what is wrong with them. Epoch numbers
below 10^11 are seconds, others milliseconds, as
`loopline.contracts.topics.event_time` reads them; a time without a zone is UTC.

>>> row_time("2024-05-01T12:00:00Z"), row_time("1714564800"), row_time(1714564800123)
(1714564800000, 1714564800000, 1714564800123)
>>> import pyarrow as pa
>>> column_times(pa.array(["2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00.5Z"]))
[1714564800000, 1714564800500]
>>> column_times(pa.array(["2024-05-01T12:00:00Z", "yesterday"])) is None
True
>>> row_time("yesterday")
Traceback (most recent call last):
...
ValueError: 'yesterday' is neither ISO-8601 nor an epoch number
"""

from __future__ import annotations

import datetime
import math
from typing import Any

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MS = datetime.timedelta(milliseconds=1)
_SECONDS_BELOW = 100_000_000_000  # epoch numbers below this are seconds
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: a timestamp past it is a mistake


def row_time(value: Any) -> int:
    """Milliseconds since the epoch of an ISO-8601 string, a datetime or date, or an epoch number.

    Epoch numbers below 10^11 are seconds, others milliseconds (as
    `loopline.contracts.topics.event_time` reads them). Raises ValueError.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                value = datetime.datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{text!r} is neither ISO-8601 nor an epoch number") from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        ms = (value - _EPOCH) // _MS
    elif isinstance(value, datetime.date):
        ms = (value - _EPOCH.date()).days * 86_400_000
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        ms = int(value * 1000) if value < _SECONDS_BELOW else int(value)
    else:
        raise ValueError(f"{value!r} is not a time")
    if ms < 0:
        raise ValueError(f"{value!r} is before 1970, which a record timestamp cannot be")
    if ms > _LAST_MS:
        raise ValueError(f"{value!r} is after the year 9999")
    return ms


def column_times(column: Any) -> list[int | None] | None:
    """Event times of an Arrow column, computed column-wise; None if that pass cannot read it all.

    Gives the same answer as `row_time` on every value it reads.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    try:
        if pa.types.is_timestamp(t):
            ms = column.cast(pa.timestamp("ms", t.tz), safe=False).cast(pa.int64())
        elif pa.types.is_integer(t):
            ms = pc.if_else(
                pc.less(column, _SECONDS_BELOW), pc.multiply_checked(column, 1000), column
            ).cast(pa.int64())
        elif pa.types.is_floating(t):
            ms = _floats_to_ms(column)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            ms = _strings_to_ms(column)
        else:
            return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if ms is None:
        return None
    bounds = pc.min_max(ms)
    if (bounds["min"].as_py() or 0) < 0 or (bounds["max"].as_py() or 0) > _LAST_MS:
        return None  # left to row_time, which explains the refusal
    return ms.to_pylist()


def _floats_to_ms(numbers: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = numbers.cast(pa.float64())
    if not pc.all(pc.is_finite(numbers)).as_py() or (pc.max(numbers).as_py() or 0) > _LAST_MS:
        return None  # an int64 cast would wrap these around
    scaled = pc.if_else(pc.less(numbers, _SECONDS_BELOW), pc.multiply(numbers, 1000.0), numbers)
    return scaled.cast(pa.int64(), safe=False)  # truncates, as int() does


def _strings_to_ms(strings: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    present = pc.drop_null(strings)
    if not len(present):
        return None
    # A failed cast costs as much as a whole pass: guess the form from one value first.
    sample = present[0].as_py().strip()
    try:
        float(sample)
    except ValueError:
        try:
            zoned = datetime.datetime.fromisoformat(sample).tzinfo is not None
        except ValueError:
            return None
        return strings.cast(pa.timestamp("ms", "UTC" if zoned else None)).cast(pa.int64())
    return _floats_to_ms(strings.cast(pa.float64()))
