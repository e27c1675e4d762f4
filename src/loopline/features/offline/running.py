"""Counts, exact sums and means at every spine row, as differences of running sums.

For the records of one entity, sorted once by ready time and once by event
time, running sums say how much of a measure (a count, an exact fixed-point
sum: `fixed`) lies up to any point. A window ``[S, T)`` read at `T` holds the
records ready by `T` with an event time from `S` on:

    ready by T  -  event time before S  +  event time before S, ready after T

The first two are running sums read where `T` and `S` fall (a binary search
of sorted ``(entity, time)`` keys, all rows at once); the last is rare (a
record whose arrival is more than ``length - tile`` after its event time,
docs/decisions/0008) and found by pairing those records with the rows of
their entity. A lifetime value is the running sum ready by `T` alone. Every
step is a numpy pass over whole columns, O(n log n), with no range join.

>>> from loopline.features.declarations import Window
>>> from loopline.features.offline.records import Records, SpineKeys
>>> source = pa.table({
...     "partition": pa.array([0, 0, 0], pa.int32()), "offset": [0, 1, 2],
...     "arrival": [60_000, 120_000, 500_000], "entity": ["a", "a", "a"],
...     "event_time": [60_000, 120_000, 70_000], "value.v": [1.5, 2.0, 4.0]})
>>> keys = SpineKeys.of(pa.table({"entity": ["a", "a", "b"], "at": [130_000, 600_000, 1]}))
>>> records = Records.of(source, "entity", "event_time", lateness=60_000, keys=keys)
>>> ten = Window.parse("10m")
>>> measures = Measures(source, records, scales={"v": 1})
>>> plan = Running(measures, keys)
>>> plan.count(None, ten).to_pylist()
[2, 3, None]
>>> plan.total("v", None, ten).to_pylist()  # the third record arrives after 130_000
[3.5, 7.5, None]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from loopline.features.declarations import Window
from loopline.features.offline.events import field_column, pass_column
from loopline.features.offline.fixed import Limbs
from loopline.features.offline.records import Records, SpineKeys

_MIN = int(np.iinfo(np.int64).min)
_BOUND = 1 << 62  # keys within +-_BOUND are offset directly, others by rank
_PAIRS = 1 << 22  # (row, straddling record) pairs per step

Measure = tuple[str, str | None, str | None]  # kind, field, the feature whose filter applies


class Measures:
    """What records add up: per feature filter, a count of records, a count of present
    values and an exact sum of values, each as int64 digits per record."""

    def __init__(self, source: pa.Table, records: Records, scales: dict[str, int | None]) -> None:
        self.source, self.records, self.scales = source, records, scales
        self.rows = max(source.num_rows, 1)  # running sums never exceed this many values
        self._digits: dict[Measure, np.ndarray] = {}
        self.widths: dict[str | None, int] = {}  # field -> limb width of its sums

    def key(self, kind: str, field: str | None, where: str | None) -> Measure:
        """The measure ``(kind, field, where)``: ``count`` of records, ``present`` values of
        `field` or ``sum`` of `field`, over the records passing the filter of feature
        `where` (None: every record); the present values of a field that is never null are
        the records, so they are one measure."""
        if kind == "present" and not self.source.column(field_column(field or "")).null_count:
            return ("count", None, where)
        return (kind, field, where)

    def digits(self, measure: Measure) -> np.ndarray | None:
        """(digits, records) int64 of `measure`: 0 or 1 per record for counts, the `Limbs`
        of ``value * 2**scale`` for sums; None when every record counts 1."""
        if measure == ("count", None, None):
            return None
        if measure not in self._digits:
            self._digits[measure] = self._make(*measure)
        return self._digits[measure]

    def _make(self, kind: str, field: str | None, where: str | None) -> np.ndarray:
        rows = self.records.rows
        passes = np.ones(len(rows), bool)
        if where is not None:
            column = self.source.column(pass_column(where))
            passes = column.fill_null(False).to_numpy(zero_copy_only=False)[rows]
        if kind == "count":
            return passes.astype(np.int64)[None, :]
        assert field is not None
        column = self.source.column(field_column(field))
        present = passes & column.is_valid().to_numpy(zero_copy_only=False)[rows]
        if kind == "present":
            return present.astype(np.int64)[None, :]
        scale = self.scales[field]
        assert scale is not None
        values = column.cast(pa.float64()).fill_null(0.0).to_numpy()[rows]
        limbs = Limbs.of(np.where(present, values, 0.0), scale, self.rows)
        self.widths[field] = limbs.width
        return limbs.digits


class Running:
    """Windowed and lifetime counts, sums and means of one group at every spine row."""

    def __init__(self, measures: Measures, keys: SpineKeys) -> None:
        self.measures, self.keys = measures, keys
        records = measures.records
        entities = len(keys.entities)
        self.by_ready = _Sorted(records.code, records.ready, entities)
        self._by_event: _Sorted | None = None
        # rows in (entity, at) order: every search below then reads keys in sorted order
        self.order = _row_order(keys.code, keys.at, entities)
        self.code = keys.code[self.order]
        self.at = keys.at[self.order]
        self.valid = self.code >= 0
        self._ready = self.by_ready.at_most(self.code, self.at)
        self._sums: dict[tuple[tuple[str, str | None, str | None], Window], np.ndarray] = {}
        self._starts: dict[Window, tuple[np.ndarray, np.ndarray]] = {}
        self._entity_start: np.ndarray | None = None

    @property
    def by_event(self) -> _Sorted:
        if self._by_event is None:
            records = self.measures.records
            self._by_event = _Sorted(records.code, records.event_time, len(self.keys.entities))
        return self._by_event

    def count(self, where: str | None, window: Window) -> pa.Array:
        """Records passing `where`'s filter in `window` (null: none), per spine row."""
        n = self._sum(self.measures.key("count", None, where), window)[0]
        return self._out(n, n != 0, pa.int64())

    def total(self, field: str, where: str | None, window: Window) -> pa.Array:
        """The exact sum of `field` over `window` (null: no value), per spine row."""
        n, total = self._total(field, where, window)
        return self._out(total, n > 0, pa.float64())

    def mean(self, field: str, where: str | None, window: Window) -> pa.Array:
        """The exact sum of `field` over `window` divided by the number of values."""
        n, total = self._total(field, where, window)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._out(total / n, n > 0, pa.float64())

    def _total(
        self, field: str, where: str | None, window: Window
    ) -> tuple[np.ndarray, np.ndarray]:
        """The number of values and their exact sum, as doubles, per row (in `self.order`)."""
        key = ("double", field, where)
        if (key, window) not in self._sums:
            digits = self._sum(self.measures.key("sum", field, where), window)
            scale = self.measures.scales[field]
            assert scale is not None
            limbs = Limbs(digits, self.measures.widths[field])
            self._sums[key, window] = limbs.to_double(scale)
        present = self.measures.key("present", field, where)
        return self._sum(present, window)[0], self._sums[key, window]

    def _out(self, values: np.ndarray, present: np.ndarray, kind: pa.DataType) -> pa.Array:
        present = present & self.valid
        out = np.zeros(len(values), values.dtype)
        out[self.order] = np.where(present, values, 0)
        mask = np.ones(len(values), bool)
        mask[self.order] = ~present
        return pa.array(out, kind, mask=mask)

    def _sum(self, measure: Measure, window: Window) -> np.ndarray:
        """(digits, rows) sums of `measure` over the records counting in `window` at each
        row (in `self.order`)."""
        key = (measure, window)
        if key in self._sums:
            return self._sums[key]
        digits = self.measures.digits(measure)
        lifetime = window.length is None or window.tile is None
        if digits is None:  # running counts are positions: no running sums to read
            total = (self._ready - (self._first() if lifetime else self._start(window)[1]))[None]
        else:
            ready = self.by_ready.running(measure, digits)
            total = ready[:, self._ready]
            if lifetime:
                total -= ready[:, self._first()]
            else:
                total -= self.by_event.running(measure, digits)[:, self._start(window)[1]]
        if not lifetime:
            total += self._straddling(digits, window, self._start(window)[0])
        self._sums[key] = total
        return total

    def _first(self) -> np.ndarray:
        """Per row, where its entity's records start in ready order."""
        if self._entity_start is None:
            self._entity_start = self.by_ready.first(self.code)
        return self._entity_start

    def _start(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Per row, `window`'s start and where event times before it end in event order."""
        if window not in self._starts:
            start = _starts(self.at, window)
            self._starts[window] = start, self.by_event.below(self.code, start)
        return self._starts[window]

    def _straddling(
        self, digits: np.ndarray | None, window: Window, start: np.ndarray
    ) -> np.ndarray:
        """Sums of `digits` over the records with an event time before each row's window
        start that arrive after its instant: ready later than the row, yet subtracted as
        before the start."""
        assert window.length is not None and window.tile is not None
        out = np.zeros((1 if digits is None else len(digits), len(self.at)), np.int64)
        records = self.measures.records
        lag = np.uint64(window.length - window.tile)
        after = records.arrival > records.event_time
        gap = records.arrival.view(np.uint64) - records.event_time.view(np.uint64)  # exact
        late = np.flatnonzero(after & (gap > lag))
        if late.size == 0:
            return out
        late = late[np.argsort(records.code[late], kind="stable")]
        code = records.code[late]
        first = np.searchsorted(code, self.code, "left")
        count = np.where(self.valid, np.searchsorted(code, self.code, "right") - first, 0)
        ends = np.cumsum(count)
        row = 0
        while row < len(count):  # rows in steps of about _PAIRS pairs
            stop = int(np.searchsorted(ends, ends[row] - count[row] + _PAIRS, "right"))
            stop = max(row + 1, stop)
            rows = np.arange(row, stop)
            pairs = count[rows]
            if pairs.sum():
                at_row = np.repeat(rows, pairs)
                offsets = np.arange(len(at_row)) - np.repeat(np.cumsum(pairs) - pairs, pairs)
                record = late[first[at_row] + offsets]
                hit = (records.event_time[record] < start[at_row]) & (
                    records.arrival[record] > self.at[at_row]
                )
                if hit.any():
                    hits = at_row[hit]
                    if digits is None:
                        np.add.at(out[0], hits, 1)
                    for j, digit in enumerate([] if digits is None else digits):
                        np.add.at(out[j], hits, digit[record[hit]])
            row = stop
        return out


class _Sorted:
    """Records sorted by (entity code, time key): running sums in that order, and where an
    (entity, bound) pair falls in it."""

    def __init__(self, code: np.ndarray, key: np.ndarray, entities: int) -> None:
        lo = int(key.min()) if len(key) else 0
        hi = int(key.max()) if len(key) else 0
        if lo >= -_BOUND and hi <= _BOUND and entities * (hi - lo + 2) < _BOUND:
            self.ranks = None
            self.lo, self.hi, self.span = lo, hi, hi - lo + 2
            rank = key - lo + 1  # 1 .. hi - lo + 1
        else:  # keys too far apart to offset: rank them among the distinct keys
            self.ranks = np.unique(key)
            self.span = len(self.ranks) + 1
            rank = np.searchsorted(self.ranks, key) + 1
        composite = code * self.span + rank
        self.order = np.argsort(composite)
        self.keys = composite[self.order]
        self._running: dict[Measure, np.ndarray] = {}

    def running(self, name: Measure, digits: np.ndarray) -> np.ndarray:
        """Running sums of `digits` in this order, with a leading zero."""
        if name not in self._running:
            out = np.zeros((len(digits), digits.shape[1] + 1), np.int64)
            for j, digit in enumerate(digits):
                np.cumsum(digit[self.order], out=out[j, 1:])
            self._running[name] = out
        return self._running[name]

    def at_most(self, code: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """Per (code, bound): how many records come before or are of entity `code` with a
        key <= `bound`."""
        if self.ranks is None:
            rank = np.clip(bound, self.lo - 1, self.hi) - (self.lo - 1)
        else:
            rank = np.searchsorted(self.ranks, bound, "right")
        return np.searchsorted(self.keys, code * self.span + rank, "right")

    def below(self, code: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """Per (code, bound): how many records come before or are of entity `code` with a
        key < `bound`."""
        if self.ranks is None:
            rank = np.clip(bound, self.lo, self.hi + 1) - self.lo
        else:
            rank = np.searchsorted(self.ranks, bound, "left")
        return np.searchsorted(self.keys, code * self.span + rank, "right")

    def first(self, code: np.ndarray) -> np.ndarray:
        """Per code: how many records come before the records of entity `code`."""
        return np.searchsorted(self.keys, code * self.span, "right")


def _row_order(code: np.ndarray, at: np.ndarray, entities: int) -> np.ndarray:
    """The spine rows sorted by (entity code, instant)."""
    if len(at) == 0:
        return np.arange(0)
    lo, hi = int(at.min()), int(at.max())
    if lo >= -_BOUND and hi <= _BOUND and (entities + 1) * (hi - lo + 1) < _BOUND:
        return np.argsort((code + 1) * (hi - lo + 1) + (at - lo))
    return np.lexsort((at, code))


def _starts(at: np.ndarray, window: Window) -> np.ndarray:
    """`Window.start` of every instant; below the smallest int64 it is the smallest int64
    (no event time is before either)."""
    assert window.length is not None and window.tile is not None
    tile, length = window.tile, window.length
    safe = at >= _MIN + length + tile  # no int64 wrap
    start = at - at % tile - (length - tile)
    if not safe.all():
        start = np.where(safe, start, _MIN)
        for i in np.flatnonzero(~safe).tolist():
            t = int(at[i])
            start[i] = max(_MIN, t - t % tile - (length - tile))
    return start
