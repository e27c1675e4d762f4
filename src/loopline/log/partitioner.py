"""Which partition a key goes to: murmur2, exactly as Kafka's Java client does.

Kafka's default partitioner sends a keyed record to
``toPositive(murmur2(key)) % partitions``. librdkafka calls this partitioner
``murmur2_random``. Using the same function on the embedded log means a key
lands in the same partition whether loopline, a Java service or Kafka Connect
wrote it, and an application moves between backends without reshuffling.

The test vectors are those of Kafka's own ``UtilsTest.testMurmur2``:

>>> murmur2(b"21"), murmur2(b"foobar"), murmur2(b"abc")
(-973932308, -790332482, 479470107)
>>> partition_for(b"member-42", 12)
6
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from struct import Struct

import numpy as np

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS = [Struct(f"<{n}I") for n in range(65)]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of `data`, as a signed 32-bit int (Java's `Utils.murmur2`)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    nwords = length >> 2
    words = (
        _WORDS[nwords].unpack_from(data)
        if nwords <= 64
        else Struct(f"<{nwords}I").unpack_from(data)
    )
    for k in words:
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition of `key` in a topic with `partitions` partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partitions_for(keys: Sequence[bytes], partitions: int) -> list[int]:
    """`partition_for` of many keys at once, vectorized with numpy (keys grouped by length).

    >>> partitions_for([b"21", b"foobar", b"member-42"], 12) == [
    ...     partition_for(k, 12) for k in (b"21", b"foobar", b"member-42")]
    True
    """
    n = len(keys)
    if n < 64:
        return [partition_for(k, partitions) for k in keys]
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    out = np.empty(n, dtype=np.uint32)
    m = np.uint32(_M)
    for length in np.unique(lengths).tolist():
        index = np.flatnonzero(lengths == length)
        raw = np.frombuffer(b"".join([keys[i] for i in index.tolist()]), dtype=np.uint8)
        raw = raw.reshape(len(index), length)
        nwords = length >> 2
        h = np.full(len(index), (_SEED ^ length) & _MASK, dtype=np.uint32)
        if nwords:
            words = np.ascontiguousarray(raw[:, : nwords * 4]).view("<u4")
            for j in range(nwords):
                k = words[:, j] * m
                k ^= k >> np.uint32(24)
                k *= m
                h *= m
                h ^= k
        tail = length & 3
        if tail:
            base = length & ~3
            if tail == 3:
                h ^= raw[:, base + 2].astype(np.uint32) << np.uint32(16)
            if tail >= 2:
                h ^= raw[:, base + 1].astype(np.uint32) << np.uint32(8)
            h ^= raw[:, base].astype(np.uint32)
            h *= m
        h ^= h >> np.uint32(13)
        h *= m
        h ^= h >> np.uint32(15)
        out[index] = h
    return ((out & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).tolist()
