"""The Confluent wire format: how Avro records carry their schema id.

Every Avro value on a loopline topic is framed as Schema Registry clients
expect: a magic byte 0, the schema id as a 4-byte big-endian int, then the
Avro body. Kafka tools that speak Schema Registry read loopline's topics, and
loopline reads theirs.

>>> framed = frame(42, b"body")
>>> framed
b'\\x00\\x00\\x00\\x00*body'
>>> unframe(framed)
(42, b'body')
>>> unframe(framed, copy=False)  # the body starts at HEADER_SIZE
(42, None)
"""

from __future__ import annotations

import struct

MAGIC = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size


class WireFormatError(ValueError):
    """Bytes that are not a Confluent-framed value."""


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + body


def unframe(data: bytes, *, copy: bool = True) -> tuple[int, bytes | None]:
    """The schema id and the body of `data`; without `copy`, None for the body (the caller
    reads it in place, from offset `HEADER_SIZE`)."""
    if data is None or len(data) < _HEADER.size:
        raise WireFormatError("value too short for the Confluent wire format (5-byte header)")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireFormatError(f"unknown magic byte {magic} (Confluent wire format starts with 0)")
    return schema_id, data[_HEADER.size :] if copy else None
