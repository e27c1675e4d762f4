"""Event times: the declared time field of a record, as milliseconds since the epoch.

`loopline.contracts.topics.event_time` guards what a producer may *send* (it
refuses times over an hour ahead of the wall clock). Features read history
too, so this converter is pure: the same value gives the same milliseconds
at any wall-clock time, online and offline alike.
"""

from __future__ import annotations

import datetime
from typing import Any

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MS = datetime.timedelta(milliseconds=1)
_SECONDS_BELOW = 100_000_000_000  # as in contracts: smaller numbers are epoch seconds


def event_time_ms(value: Any) -> int:
    """Milliseconds since the epoch of a datetime, date, ISO 8601 string or epoch number.

    Naive datetimes are UTC; datetimes are floored to the millisecond. Numbers
    below 1e11 are seconds (rounded to the nearest millisecond, since a float
    of seconds cannot hold every millisecond exactly), larger ones milliseconds.

    >>> event_time_ms("2023-11-14T22:13:20.123Z")
    1700000000123
    >>> event_time_ms(1700000000.123), event_time_ms(1700000000123)
    (1700000000123, 1700000000123)
    >>> event_time_ms(datetime.datetime(2023, 11, 14, 22, 13, 20, 123999))
    1700000000123
    >>> event_time_ms("yesterday")
    Traceback (most recent call last):
    ...
    ValueError: cannot read event time from 'yesterday': use a datetime, an ISO 8601 string or epoch seconds/milliseconds
    """
    moment: Any = value
    if isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            moment = None
    elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        moment = datetime.datetime(value.year, value.month, value.day)
    if isinstance(moment, datetime.datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return (moment - _EPOCH) // _MS
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 1000 if abs(value) < _SECONDS_BELOW else value
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return round(value * 1000) if abs(value) < _SECONDS_BELOW else int(value // 1)
    raise ValueError(
        f"cannot read event time from {value!r}: use a datetime, an ISO 8601 string or "
        "epoch seconds/milliseconds"
    )
