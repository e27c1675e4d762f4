"""Record batches: how the embedded log stores records, many to a row.

Like Kafka, the embedded log stores *batches* of records of one partition, not
single records: one SQLite row holds up to a few thousand records, laid out in
columns so that encoding and decoding run in C (`array`, `bytes.join`, `map`)
rather than in a Python loop per record (see docs/decisions/0002).

Layout (little-endian): a header ``<iiB`` (record count, first offset delta
flag, flags), then the sections that the flags say are present:

- offset deltas (``uint32`` x n) - only when offsets are not contiguous (after compaction);
- timestamps (``int64`` x n);
- key lengths and value lengths (``int32`` x n, -1 meaning None);
- keys, then values, concatenated;
- headers (only when some record has headers): per record a count and
  length-prefixed name/value pairs.

>>> data = encode([b"k1", None], [b"v1", None], [10, 11], None, None)
>>> decode("t", 0, 5, data)
[Record(topic='t', partition=0, offset=5, timestamp=10, key=b'k1', value=b'v1', headers=()), \
Record(topic='t', partition=0, offset=6, timestamp=11, key=None, value=None, headers=())]
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from io import BytesIO
from itertools import repeat
from struct import Struct

from loopline.log.collector import collector_paused
from loopline.log.records import Headers, Record

_HEADER = Struct("<IB")
_HAS_OFFSETS = 1
_HAS_HEADERS = 2
_U32 = Struct("<I")
_new_record = tuple.__new__


def _lengths(items: Sequence[bytes | None]) -> tuple[array, bytes]:
    """Lengths (-1 for None) and the concatenation of `items`."""
    if None in items:
        return array("i", [-1 if x is None else len(x) for x in items]), b"".join(
            [x for x in items if x is not None]
        )
    return array("i", map(len, items)), b"".join(items)


def _split(read: Callable[[int], bytes], lengths: array) -> list[bytes | None]:
    """Inverse of `_lengths`: the pieces, each `read` from a stream over their concatenation.

    A `BytesIO` over the batch shares its buffer, and reading the next `n`
    bytes of it takes a fifth of the time of slicing them (a `slice` object
    per piece).
    """
    if len(lengths) == 0:
        return []
    if min(lengths) >= 0:
        return list(map(read, lengths))
    return [None if n < 0 else read(n) for n in lengths]


def _encode_headers(headers: Sequence[Headers]) -> bytes:
    parts: list[bytes] = []
    for hs in headers:
        parts.append(_U32.pack(len(hs)))
        for name, value in hs:
            raw = name.encode()
            parts += (_U32.pack(len(raw)), raw, _U32.pack(len(value)), bytes(value))
    return b"".join(parts)


def _decode_headers(data: memoryview, n: int) -> list[Headers]:
    out: list[Headers] = []
    pos = 0
    for _ in range(n):
        (count,) = _U32.unpack_from(data, pos)
        pos += 4
        pairs = []
        for _ in range(count):
            (ln,) = _U32.unpack_from(data, pos)
            name = bytes(data[pos + 4 : pos + 4 + ln]).decode()
            pos += 4 + ln
            (lv,) = _U32.unpack_from(data, pos)
            pairs.append((name, bytes(data[pos + 4 : pos + 4 + lv])))
            pos += 4 + lv
        out.append(tuple(pairs))
    return out


def encode(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    timestamps: Sequence[int],
    headers: Sequence[Headers] | None,
    offset_deltas: Sequence[int] | None,
) -> bytes:
    """Encode one batch. `offset_deltas` is None when offsets are base, base+1, ..."""
    n = len(values)
    flags = (_HAS_OFFSETS if offset_deltas is not None else 0) | (
        _HAS_HEADERS if headers is not None and any(headers) else 0
    )
    key_lengths, key_blob = _lengths(keys)
    value_lengths, value_blob = _lengths(values)
    parts = [_HEADER.pack(n, flags)]
    if flags & _HAS_OFFSETS:
        parts.append(array("I", offset_deltas).tobytes())
    parts += (
        array("q", timestamps).tobytes(),
        key_lengths.tobytes(),
        value_lengths.tobytes(),
        key_blob,
        value_blob,
    )
    if flags & _HAS_HEADERS:
        parts.append(_encode_headers(headers))  # type: ignore[arg-type]
    return b"".join(parts)


def decode(topic: str, partition: int, base_offset: int, data: bytes) -> list[Record]:
    """Decode a batch into records, in offset order."""
    n, flags = _HEADER.unpack_from(data)
    view = memoryview(data)
    pos = _HEADER.size
    if flags & _HAS_OFFSETS:
        deltas = array("I")
        deltas.frombytes(view[pos : pos + 4 * n])
        pos += 4 * n
        offsets: Sequence[int] = [base_offset + d for d in deltas]
    else:
        offsets = range(base_offset, base_offset + n)
    timestamps = array("q")
    timestamps.frombytes(view[pos : pos + 8 * n])
    pos += 8 * n
    key_lengths = array("i")
    key_lengths.frombytes(view[pos : pos + 4 * n])
    pos += 4 * n
    value_lengths = array("i")
    value_lengths.frombytes(view[pos : pos + 4 * n])
    pos += 4 * n
    stream = BytesIO(data)
    stream.seek(pos)
    keys = _split(stream.read, key_lengths)
    values = _split(stream.read, value_lengths)
    pos = stream.tell()
    headers = _decode_headers(view[pos:], n) if flags & _HAS_HEADERS else repeat(())
    # Thousands of new tuples would set off the cyclic garbage collector again and again,
    # scanning them for cycles they cannot have: pause it while the batch is built.
    with collector_paused():
        return list(
            map(
                _new_record,
                repeat(Record, n),
                zip(repeat(topic), repeat(partition), offsets, timestamps, keys, values, headers),
            )
        )
