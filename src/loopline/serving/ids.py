"""Decision ids: UUID version 7 (RFC 9562), so ids sort in the order decisions were made.

The first 48 bits are the Unix time in milliseconds; the next 12 count up
within one millisecond (from a random start), so the ids one process makes
strictly increase even when many fall in the same millisecond; the rest is
random. Sorting ids as text sorts them by time, and the time can be read back.

>>> a, b = uuid7(), uuid7()
>>> a < b, a.version, len(str(a))
(True, 7, 36)
>>> abs(uuid7_time(a) - time.time_ns() // 1_000_000) < 5_000
True
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7", "uuid7_time"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A new UUIDv7, greater than every one this process made before."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leave room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def uuid7_time(value: uuid.UUID | str) -> int:
    """The millisecond (since the epoch) a UUIDv7 was made in."""
    if isinstance(value, str):
        value = uuid.UUID(value)
    return value.int >> 80
