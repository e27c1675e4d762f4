"""Reading a feature source exactly over pinned offset ranges, for datasets that can be built again.

`pin` records, per partition, the first offset the log still holds and the
end of what is committed now; `read_pinned` reads exactly ``[start, end)`` of
every partition, committed records only, and nothing after `end` however
much was appended since. The reading, counting and digesting is
`loopline.stream.ranges.read_ranges`; what is particular to datasets is the
decode hook: records become `EventColumns`, and a topic of plain JSON objects
is decoded a chunk at a time (the columnar fast path). `read_events` goes one
step further for a dataset's sources: each chunk becomes its part of the
topic's events table, a chunk of plain JSON decoded by Arrow column by column
(`loopline.features.offline.columnar`), any other by the record-by-record
path.

>>> import tempfile
>>> from loopline.log import open_log
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("clicks")
>>> producer = log.producer()
>>> for value in [b'{"n": 1}', b'[2]', b'{"n": 3}']:
...     producer.send("clicks", value)
>>> producer.flush()
3
>>> ranges = pin(log, "clicks")
>>> producer.send("clicks", b'{"n": 4}'); producer.flush()  # after the pin: not read
1
>>> read = read_pinned(log, "clicks", ranges, SourceReader(None).decoder("clicks"))
>>> [r["value"] for r in read.records]
[{'n': 1}, {'n': 3}]
>>> p = read.ranges.partitions[0]
>>> (p.start, p.end, p.records, p.undecodable)
(0, 3, 3, 1)
>>> log.close()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import msgspec
import pyarrow as pa

from loopline.contracts.codecs import ContractViolation
from loopline.features.declarations import FeatureSet
from loopline.features.offline.columnar import concat_events, events_table_of_json
from loopline.features.offline.events import EventColumns, SourceLayout, events_table_of_columns
from loopline.features.offline.history import Gaps
from loopline.features.offline.manifests import DatasetError, TopicRange
from loopline.features.sources import Decode, SourceReader, is_envelope
from loopline.features.sources import _decode_json as _decode_json_value
from loopline.features.sources import _json_object as _plain_json
from loopline.log import Log, Record
from loopline.stream import ranges as stream_ranges
from loopline.stream.ranges import RangeError, pin

Progress = Callable[[str, int, int], None]  # (topic, offsets read, offsets to read)

__all__ = [
    "PinnedRead",
    "Progress",
    "SourceReader",
    "check_held",
    "pin",
    "read_events",
    "read_pinned",
]

_GONE = "; build a new dataset instead"  # what to do when a dataset's ranges are gone


@dataclass
class PinnedRead:
    """What `read_pinned` read: the decoded records as columns (as `events_table_of_columns`
    takes them) and the ranges with their counts and digests."""

    columns: EventColumns
    ranges: TopicRange

    @property
    def records(self) -> list[dict[str, Any]]:
        """The decoded records one by one, as `events_table` takes them."""
        return self.columns.records()


def check_held(log: Log, ranges: TopicRange, *, while_reading: bool = False) -> None:
    """Raise `DatasetError` unless the log still holds every offset of `ranges`."""
    try:
        stream_ranges.check_held(log, ranges, while_reading=while_reading)
    except RangeError as exc:
        raise DatasetError(f"{exc}{_GONE}") from None


def read_pinned(
    log: Log,
    topic: str,
    ranges: TopicRange,
    decode: Decode,
    *,
    progress: Progress | None = None,
    stall_timeout: float = 60.0,
    gaps: Gaps | None = None,
) -> PinnedRead:
    """Every record of `ranges`, decoded by `decode`, in (partition, offset) order.

    A record `decode` refuses (`ContractViolation`) is counted as undecodable
    and skipped. `gaps`, if given, sees every record read (decoded or not), to
    find where the topic lacks records (`loopline.features.offline.history`). Raises `DatasetError` when the log no longer holds a range
    (retention deleted its start, or the topic shrank) or when reading stops
    making progress for `stall_timeout` seconds.
    """
    try:
        read = stream_ranges.read_ranges(
            log,
            ranges,
            decoder(decode, gaps),
            progress=None if progress is None else lambda done, total: progress(topic, done, total),
            stall_timeout=stall_timeout,
        )
    except RangeError as exc:
        raise DatasetError(f"{exc}{_GONE}") from None
    return PinnedRead(EventColumns.concat(read.chunks), read.ranges)


def read_events(
    log: Log,
    feature_set: FeatureSet,
    topic: str,
    ranges: TopicRange,
    decode: Decode,
    *,
    progress: Progress | None = None,
    stall_timeout: float = 60.0,
    gaps: Gaps | None = None,
) -> tuple[pa.Table, TopicRange]:
    """The events table of feature source `topic` over `ranges` (what
    `events_table_of_columns` makes of `read_pinned`'s records), and the ranges read.

    Each chunk of records becomes its part of the table while the next ones are
    polled: a chunk of plain JSON objects through Arrow's JSON reader, column by
    column, when `events_table_of_json` can be sure of the result; any other
    through `decode`, record by record. Raises as `read_pinned` does, and
    `BuildError` as `events_table_of_columns` does.
    """
    layout = SourceLayout.of(feature_set, topic)
    each = decoder(decode)

    def parse(partition: int, records: list[Record]) -> tuple[pa.Table, int]:
        offsets, stamps = list(map(_OFFSET, records)), list(map(_TIME, records))
        if gaps is not None:  # chunks of a partition come in offset order, one at a time
            gaps.see(partition, offsets, stamps)
        if decode is _plain_json:
            keys, values = list(map(_KEY, records)), list(map(_VALUE, records))
            table = events_table_of_json(layout, partition, offsets, stamps, keys, values)
            if table is not None:
                return table, 0
        columns, undecodable = each(partition, records)
        return events_table_of_columns(feature_set, topic, columns), undecodable

    try:
        read = stream_ranges.read_ranges(
            log,
            ranges,
            parse,
            progress=None if progress is None else lambda done, total: progress(topic, done, total),
            stall_timeout=stall_timeout,
        )
    except RangeError as exc:
        raise DatasetError(f"{exc}{_GONE}") from None
    if not read.chunks:
        empty = events_table_of_columns(feature_set, topic, EventColumns.empty())
        return empty, read.ranges
    return concat_events(topic, read.chunks), read.ranges


_OFFSET, _TIME, _KEY, _VALUE = (itemgetter(i) for i in range(2, 6))


def decoder(decode: Decode, gaps: Gaps | None = None) -> stream_ranges.Parse[EventColumns]:
    """The decode hook of `read_ranges` for a feature source decoded by `decode`: records of
    one partition become `EventColumns`, those `decode` refuses are counted and left out;
    `gaps` sees them all first."""

    def parse(partition: int, records: list[Record]) -> tuple[EventColumns, int]:
        offsets = list(map(_OFFSET, records))
        stamps = list(map(_TIME, records))
        if gaps is not None:  # chunks of a partition come in offset order, one at a time
            gaps.see(partition, offsets, stamps)
        keys = list(map(_KEY, records))
        values = list(map(_VALUE, records))
        decoded = _decode_batch(values) if decode is _plain_json else None
        undecodable = 0
        if decoded is None:  # one by one: a contract's decoder, or some record is not an object
            keep = []
            decoded = []
            for value in values:
                try:
                    decoded.append(decode(value))
                except ContractViolation:
                    keep.append(False)
                    continue
                keep.append(True)
            if not all(keep):
                undecodable = keep.count(False)
                offsets = [x for x, k in zip(offsets, keep, strict=True) if k]
                stamps = [x for x, k in zip(stamps, keep, strict=True) if k]
                keys = [x for x, k in zip(keys, keep, strict=True) if k]
        columns = EventColumns.empty()
        columns.extend(partition, offsets, stamps, keys, decoded)
        return columns, undecodable

    return parse


def _decode_batch(values: list[bytes | None]) -> list[dict[str, Any] | None] | None:
    """The JSON objects `values` hold (None for a tombstone), as `SourceReader` decodes them
    one by one; None unless every value is a JSON object or a tombstone."""
    try:
        if None in values:
            decoded = [None if v is None else _decode_json_value(v) for v in values]
        else:
            decoded = list(map(_decode_json_value, values))
    except msgspec.DecodeError:
        return None
    if not {dict, type(None)}.issuperset(map(type, decoded)):
        return None
    if None in decoded and decoded.count(None) != values.count(None):
        return None  # some value is JSON null, not a tombstone
    if any(d is not None and is_envelope(d) for d in decoded):
        return None  # change events: one by one, as `SourceReader` reads them
    return decoded
